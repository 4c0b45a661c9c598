"""Settings read once from the environment, so every process (api, worker, beat) is configured the same way."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_VAR_DIR = Path("var")
# PostgreSQL keeps its timeouts in milliseconds in a 32-bit integer: a longer one would refuse every connection.
MAX_TIMEOUT_SECONDS = 2_147_483


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long a database session may wait, in seconds; 0 is no limit (PostgreSQL's own meaning of 0).

    A request or a job waiting on a row lock that a hung transaction holds would otherwise wait for ever and
    keep its thread: the statement and the lock wait end with an error the client can retry, and a process
    that stopped half-way through a transaction loses its session, so its row locks go with it."""

    statement: float = 30.0  # statement_timeout
    lock: float = 10.0  # lock_timeout
    idle_in_transaction: float = 60.0  # idle_in_transaction_session_timeout


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_VAR_DIR / 'bpm.sqlite'}"
    broker_url: str = ""  # empty: embedded in-process worker and scheduler
    host: str = "127.0.0.1"
    port: int = 8000
    bootstrap_admin_token: str = ""
    clock: str = "system"  # "system" or "manual"
    allow_scripts: str = ""  # "" (script tasks refused at deploy) or "restricted"
    max_upload_bytes: int = 5_000_000
    var_dir: Path = DEFAULT_VAR_DIR
    extra: dict = field(default_factory=dict)
    # delivery (outbox consumers): email over SMTP and robot/webhook targets; empty disables a channel
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "bpm@localhost"
    webhook_url: str = ""
    webhook_secret: str = ""
    dingtalk_webhook: str = ""
    dingtalk_secret: str = ""
    wecom_webhook: str = ""
    public_url: str = "http://127.0.0.1:8000"
    delivery_max_attempts: int = 6
    # daily jobs: the time of day (HH:MM, UTC) at which the dormant-customer check runs
    dormant_check_at: str = "01:00"
    # bounded waits of the api's and the workers' database sessions (PostgreSQL only; migrations wait unbounded)
    database_timeouts: DatabaseTimeouts = DatabaseTimeouts()

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Settings:
        env = os.environ if environ is None else environ
        var_dir = Path(env.get("BPM_VAR_DIR", str(DEFAULT_VAR_DIR)))
        return cls(
            database_url=env.get("BPM_DATABASE_URL") or f"sqlite:///{var_dir / 'bpm.sqlite'}",
            broker_url=env.get("BPM_BROKER_URL", ""),
            host=env.get("BPM_HOST", "127.0.0.1"),
            port=int(env.get("BPM_PORT", "8000")),
            bootstrap_admin_token=env.get("BPM_BOOTSTRAP_ADMIN_TOKEN", ""),
            clock=env.get("BPM_CLOCK", "system"),
            allow_scripts=env.get("BPM_ALLOW_SCRIPTS", ""),
            max_upload_bytes=int(env.get("BPM_MAX_UPLOAD_BYTES", "5000000")),
            var_dir=var_dir,
            smtp_host=env.get("BPM_SMTP_HOST", ""),
            smtp_port=int(env.get("BPM_SMTP_PORT", "25")),
            smtp_from=env.get("BPM_SMTP_FROM", "bpm@localhost"),
            webhook_url=env.get("BPM_WEBHOOK_URL", ""),
            webhook_secret=env.get("BPM_WEBHOOK_SECRET", ""),
            dingtalk_webhook=env.get("BPM_DINGTALK_WEBHOOK", ""),
            dingtalk_secret=env.get("BPM_DINGTALK_SECRET", ""),
            wecom_webhook=env.get("BPM_WECOM_WEBHOOK", ""),
            public_url=env.get("BPM_PUBLIC_URL", "http://127.0.0.1:8000"),
            delivery_max_attempts=int(env.get("BPM_DELIVERY_MAX_ATTEMPTS", "6")),
            dormant_check_at=env.get("BPM_DORMANT_CHECK_AT", "01:00"),
            database_timeouts=DatabaseTimeouts(
                statement=_seconds(env, "BPM_DB_STATEMENT_TIMEOUT", DatabaseTimeouts.statement),
                lock=_seconds(env, "BPM_DB_LOCK_TIMEOUT", DatabaseTimeouts.lock),
                idle_in_transaction=_seconds(env, "BPM_DB_IDLE_IN_TRANSACTION_TIMEOUT",
                                             DatabaseTimeouts.idle_in_transaction)),
        )

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def embedded(self) -> bool:
        return not self.broker_url


def _seconds(env, name: str, default: float) -> float:
    """A duration in seconds (0: no limit) from the variable `name`, or `default` when it is unset or empty. A
    value that is not one is refused here, naming the variable, rather than by the first connection."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_TIMEOUT_SECONDS:  # also false for nan
        raise ValueError(f"{name} must be a number of seconds from 0 (no limit) to {MAX_TIMEOUT_SECONDS}, "
                         f"not {text!r}")
    return seconds
