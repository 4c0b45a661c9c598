"""Real processes for the reliability tests: a private PostgreSQL database, a private RabbitMQ vhost, the
API under `bpm serve`, `bpm worker` and `bpm beat` subprocesses, and local SMTP and webhook receivers.

Every process runs in its own session so a test can `kill -9` it with all its children; every wait is
bounded and names what it waited for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from conftest import REPO, _postgres_database, service_missing
from receivers import free_port
from sqlalchemy import text

from bpm.adapters.db import make_engine, migrate
from bpm.adapters.orm import load_all_models
from bpm.adapters.unit_of_work import UnitOfWork, session_factory
from bpm.config import Settings
from bpm.services import load_handlers

BIN = Path(sys.executable).parent
RABBITMQ_HOST_URL = os.environ.get("BPM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
WEBHOOK_SECRET = "reliability-secret"


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.25,
               explain: Callable[[], object] | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every)
    detail = f": {explain()}" if explain else ""
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}{detail}")


# --- services ------------------------------------------------------------------------------------------------


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120, check=check)


def require_rabbitmq() -> None:
    from kombu import Connection

    try:
        with Connection(RABBITMQ_HOST_URL + "//", connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # noqa: BLE001 - any failure means the broker tier cannot run
        service_missing(f"RabbitMQ at {RABBITMQ_HOST_URL} is unreachable: {error}")
    if shutil.which("rabbitmqctl") is None:
        service_missing("rabbitmqctl is not installed (needed for a private vhost and the outage test)")
    if rabbitmqctl("status", check=False).returncode != 0:
        service_missing("rabbitmqctl cannot talk to the local RabbitMQ node (run the tests as its admin)")
    if not (BIN / "celery").exists():
        service_missing("the celery command is not installed in this environment")


class PrivateVhost:
    """A RabbitMQ vhost of this test run only, so other runs on the same broker are never disturbed."""

    def __init__(self):
        self.name = f"bpm_t_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return f"{RABBITMQ_HOST_URL}/{self.name}"

    def __exit__(self, *_exc) -> None:
        rabbitmqctl("delete_vhost", self.name, check=False)


class PrivateDatabase:
    def __enter__(self) -> str:
        self.admin, url, self.name = _postgres_database()
        if self.admin is None:
            service_missing(f"PostgreSQL is unreachable: {self.name}")
        migrate(url)
        return url

    def __exit__(self, *_exc) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


# --- processes -----------------------------------------------------------------------------------------------


class Process:
    """A subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        log = self.log_path.open("a")
        self.popen = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, marker: str, timeout: float = 45) -> None:
        wait_until(lambda: marker in self.log() or self._died(), timeout, f"{self.name} to log {marker!r}")
        assert not self._died(), f"{self.name} exited:\n{self.log()[-3000:]}"

    def _died(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def kill9(self) -> None:
        """kill -9 the whole process group (a prefork worker and its children), no chance to clean up."""
        self._signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=30)

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, number)


class Stack:
    """The production process layout against private services; the test drives it over HTTP and SQL."""

    def __init__(self, database_url: str, broker_url: str, smtp_port: int, webhook_url: str, log_dir: Path):
        self.database_url, self.broker_url, self.log_dir = database_url, broker_url, log_dir
        self.api_port = free_port()
        self.env = {**os.environ, "BPM_DATABASE_URL": database_url, "BPM_BROKER_URL": broker_url,
                    "BPM_SMTP_HOST": "127.0.0.1", "BPM_SMTP_PORT": str(smtp_port),
                    "BPM_SMTP_FROM": "bpm@example.com", "BPM_WEBHOOK_URL": webhook_url,
                    "BPM_WEBHOOK_SECRET": WEBHOOK_SECRET, "BPM_VAR_DIR": str(log_dir), "BPM_CLOCK": "system"}
        self.settings = Settings.from_env(self.env)
        load_all_models()
        load_handlers()
        self.engine = make_engine(database_url)
        self.sessions = session_factory(self.engine)
        self.processes: list[Process] = []

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, settings=self.settings)

    def worker(self, name: str, concurrency: int = 2) -> Process:
        process = self._spawn(name, [str(BIN / "bpm"), "worker", f"--concurrency={concurrency}", "-n",
                                     f"{name}@%h", "--without-gossip", "--without-mingle"])
        process.wait_for_log("ready.")
        return process

    def beat(self, name: str) -> Process:
        process = self._spawn(name, [str(BIN / "bpm"), "beat", f"--schedule={self.log_dir / name}-schedule",
                                     f"--pidfile={self.log_dir / name}.pid"])
        process.wait_for_log("Starting...")
        return process

    def api(self) -> Process:
        process = self._spawn("api", [str(BIN / "bpm"), "serve", "--workers", "2"],
                              {"BPM_HOST": "127.0.0.1", "BPM_PORT": str(self.api_port), "BPM_WEB_THREADS": "4"})
        wait_until(self._api_ready, 45, "the API to answer /healthz")
        return process

    def _api_ready(self) -> bool:
        try:
            return requests.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, {**self.env, **(env or {})}, self.log_dir).start()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
        self.engine.dispose()

    def sql(self, statement: str, **params) -> list:
        with self.engine.connect() as connection:
            return list(connection.execute(text(statement), params))
