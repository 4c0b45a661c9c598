"""The transactional outbox: services enqueue messages in their own transaction, a relay publishes
them, and an idempotent consumer delivers each one on its channel.

Delivery is at-least-once end to end (a crash between "sent" and "recorded" repeats the send), so every
message carries its outbox id to the receiver (`X-BPM-Delivery`, the email Message-ID) for deduplication,
and a message already recorded as delivered is never sent again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from bpm.adapters.orm import ProcessInstance
from bpm.adapters.orm_outbox import OutboxMessage
from bpm.domain.errors import InvalidTransition, NotFound

log = logging.getLogger(__name__)

BASE_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=6)
DEFAULT_MAX_ATTEMPTS = 6
STUCK_AFTER = timedelta(minutes=5)
STATUSES = ("pending", "published", "delivered", "failed")


@dataclass(frozen=True)
class Delivery:
    """What a channel gets: the outbox id (the receiver's dedupe key), the kind and the payload."""

    outbox_id: int
    kind: str
    payload: dict[str, Any]


class ChannelUnavailable(Exception):
    """No channel is configured for a message kind (the message fails with this reason)."""


# --- producing ----------------------------------------------------------------------------------------------


def enqueue(uow, kind: str, payload: dict, dedupe_key: str | None = None) -> int:
    """Add one message to the caller's transaction; nothing is sent before that transaction commits.

    A message whose `dedupe_key` is already in the outbox is not added again: the existing id is returned.
    """
    if dedupe_key is not None:
        existing = uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    row = OutboxMessage(created_at=uow.clock.now(), kind=kind, payload=payload, dedupe_key=dedupe_key,
                        status="pending", attempts=0)
    try:
        # A savepoint: a concurrent writer of the same dedupe key costs this command only the insert.
        with uow.session.begin_nested():
            uow.session.add(row)
    except IntegrityError:
        return uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
    return row.id


def enqueue_many(uow, messages: list[tuple[str, dict, str | None]]) -> None:
    """Add several messages in one multi-row INSERT (the task hot path; ids are not needed there)."""
    now = uow.clock.now()
    rows = [{"created_at": now, "kind": kind, "payload": payload, "dedupe_key": dedupe_key, "status": "pending",
             "attempts": 0} for kind, payload, dedupe_key in messages]
    insert_rows(uow, OutboxMessage, rows)


def insert_rows(uow, model, rows: list[dict]) -> None:
    """Insert a whole fan-out (one row per recipient) in one statement.

    On PostgreSQL the rows travel as one JSON parameter expanded by jsonb_to_recordset: a single short,
    cached statement whatever the number of rows (executemany would cost a round trip or a statement
    compilation per row). Elsewhere an ordinary executemany.
    """
    if not rows:
        return
    if not is_postgres(uow):
        uow.session.execute(insert(model), rows)
        return
    table, dialect = model.__table__, uow.session.get_bind().dialect
    columns = list(rows[0])
    record = ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in columns)
    names = ", ".join(columns)
    statement = text(f"INSERT INTO {table.name} ({names}) SELECT {names} "  # noqa: S608 - names from the model
                     f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({record})")
    uow.session.execute(statement, {"rows": json.dumps(rows, default=_json_default, ensure_ascii=False)})


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the outbox")


# --- relaying -----------------------------------------------------------------------------------------------


def relay_outbox(uow_factory: Callable, publish: Callable[[int, str], None], limit: int = 200) -> int:
    """Publish due pending messages and mark them published, in one transaction.

    Rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL, so several relays never publish the same
    row concurrently. If the process dies after publish() but before commit, the rows stay pending and are
    published again: consumers are idempotent. A publish error stops the batch; what was published so far
    is recorded.
    """
    uow = uow_factory()
    with uow:
        claimed = _claim_due(uow, limit)
        published = []
        try:
            for outbox_id, kind in claimed:
                publish(outbox_id, kind)
                published.append(outbox_id)
        except Exception:  # noqa: BLE001 - broker down: keep the rest pending and try again on the next tick
            log.warning("outbox relay: publishing failed after %d of %d messages", len(published),
                        len(claimed), exc_info=True)
        _mark_published(uow, published)
        uow.commit()
    return len(published)


def _claim_due(uow, limit: int) -> list[tuple[int, str]]:
    now = uow.clock.now()
    query = (select(OutboxMessage.id, OutboxMessage.kind)
             .where(OutboxMessage.status == "pending",
                    or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now))
             .order_by(OutboxMessage.id).limit(limit))
    if is_postgres(uow):
        query = query.with_for_update(skip_locked=True)
    return [(row.id, row.kind) for row in uow.session.execute(query)]


def _mark_published(uow, ids: list[int]) -> None:
    if ids:
        claimed = OutboxMessage.id.in_(ids) & (OutboxMessage.status == "pending")
        uow.session.execute(update(OutboxMessage).where(claimed)
                            .values(status="published", published_at=uow.clock.now()))


def requeue_stuck(uow_factory: Callable, older_than: timedelta = STUCK_AFTER) -> int:
    """The sweeper: publish again what was published but not delivered in time (a lost broker message)."""
    uow = uow_factory()
    with uow:
        cutoff = uow.clock.now() - older_than
        result = uow.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "published", OutboxMessage.published_at < cutoff)
            .values(status="pending", next_attempt_at=None))
        uow.commit()
    return result.rowcount or 0


# --- consuming ----------------------------------------------------------------------------------------------


def deliver(outbox_id: int, uow_factory: Callable, channels: Mapping[str, Callable]) -> str:
    """Deliver one message on its channel; safe to call any number of times for the same id.

    Returns "delivered", "duplicate" (already delivered: no-op), "retry" (failed, will be tried again
    later), "failed" (the last attempt failed) or "missing".
    On PostgreSQL the row is locked (waiting, not skipping) during the send: the relay that published the
    message may still hold it until its commit, and two consumers of a re-published message serialize so
    that the second one sees it delivered. A consumer killed mid-send releases the lock with its connection.
    """
    uow = uow_factory()
    with uow:
        row = _lock_for_delivery(uow, outbox_id)
        if row is None:
            return "missing"
        if row.status in ("delivered", "failed"):
            return "duplicate" if row.status == "delivered" else "failed"
        outcome = _send(uow, row, channels)
        uow.commit()
    return outcome


def _lock_for_delivery(uow, outbox_id: int) -> OutboxMessage | None:
    query = select(OutboxMessage).where(OutboxMessage.id == outbox_id)
    if is_postgres(uow):
        query = query.with_for_update()
    return uow.session.execute(query).scalar_one_or_none()


def _send(uow, row: OutboxMessage, channels: Mapping[str, Callable]) -> str:
    try:
        channel = channels.get(row.kind)
        if channel is None:
            raise ChannelUnavailable(f"no channel is configured for {row.kind!r} messages")
        channel(Delivery(row.id, row.kind, dict(row.payload or {})), uow)
    except Exception as error:  # noqa: BLE001 - any channel failure is recorded on the row and retried
        return _record_failure(uow, row, error)
    failed_before = row.last_error is not None
    row.status, row.delivered_at, row.last_error = "delivered", uow.clock.now(), None
    row.attempts += 1
    if failed_before:  # a message that failed for good and was retried: its incident is over
        _resolve_incident(uow, row)
    return "delivered"


def _record_failure(uow, row: OutboxMessage, error: Exception) -> str:
    row.attempts += 1
    row.last_error = f"{type(error).__name__}: {error}"[:2000]
    if row.attempts >= _max_attempts(uow):
        row.status, row.next_attempt_at = "failed", None
        log.warning("outbox %s (%s) failed for good after %d attempts: %s", row.id, row.kind, row.attempts,
                    error)
        _open_incident(uow, row)
        return "failed"
    row.status, row.next_attempt_at = "pending", uow.clock.now() + backoff(row.attempts)
    return "retry"


# --- incidents: a message that failed for good -----------------------------------------------------------

INCIDENT_KIND = "delivery"


def _open_incident(uow, row: OutboxMessage) -> None:
    """In the transaction that records the last failed attempt: an incident (GET /incidents) whose retry puts
    the message back in the outbox. A failed message about an incident opens one without announcing it, so a
    dead receiver of incident events cannot feed itself."""
    from bpm.services import incidents  # late: incidents imports the projection

    payload = dict(row.payload or {})
    facts = payload.get("facts") or (payload.get("body") or {}).get("data") or {}
    body = payload.get("body") or {}
    instance_id = facts.get("instance_id") or body.get("instance_id")
    if instance_id and uow.session.get(ProcessInstance, str(instance_id)) is None:
        instance_id = None  # a message about something else than a stored instance
    job = incidents.Job(INCIDENT_KIND, str(row.id), instance_id=instance_id,
                        process_key=facts.get("process_key") or body.get("process_key") or None,
                        element_id=facts.get("element_id") or None,
                        element_name=f"{row.kind} delivery to {_target(row.kind, payload)}"[:255])
    message = f"{row.kind} delivery {row.id} failed after {row.attempts} attempt(s): {row.last_error}"
    about_incident = str(payload.get("event") or body.get("event") or "").startswith("incident.")
    incidents.open_in_transaction(uow, job, message, announce=not about_incident)


def _target(kind: str, payload: dict) -> str:
    if kind == "email":
        return str(payload.get("to") or payload.get("username") or "?")
    if kind == "inapp":
        return str(payload.get("username") or "?")
    url = str(payload.get("url") or "")
    return url.split("?", 1)[0] if url else f"the configured {kind} endpoint"


def _resolve_incident(uow, row: OutboxMessage) -> None:
    from bpm.services import incidents

    incidents.resolve_job(uow, INCIDENT_KIND, str(row.id), "delivered after a retry")


def requeue_failed(uow_factory: Callable, job_id: str) -> bool:
    """POST /incidents/{id}/retry of a delivery incident: the message goes back to the outbox with a fresh set
    of attempts, and the incident stays open until it is delivered (resolved then) or fails for good again
    (updated). True when there is nothing left to deliver."""
    from bpm.services import incidents

    uow = uow_factory()
    with uow:
        row = uow.session.get(OutboxMessage, int(job_id))
        if row is None or row.status == "delivered":
            return True
        if row.status == "failed":
            row.status, row.attempts, row.next_attempt_at, row.published_at = "pending", 0, None, None
        incident = incidents.open_incident(uow, INCIDENT_KIND, job_id)
        if incident is not None:
            incident.next_attempt_at = uow.clock.now()  # queued: the relay publishes it on its next tick
        uow.commit()
    return False


def backoff(attempts: int) -> timedelta:
    """Exponential: 30 s after the first failure, then 60 s, 120 s ... capped at six hours."""
    return min(BASE_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _max_attempts(uow) -> int:
    settings = uow.settings
    return getattr(settings, "delivery_max_attempts", None) or DEFAULT_MAX_ATTEMPTS


# --- operating (API) ----------------------------------------------------------------------------------------


def retry_delivery(outbox_id: int, uow) -> OutboxMessage:
    """Send a failed (or waiting) message again now, with a fresh set of attempts."""
    with uow:
        row = uow.session.get(OutboxMessage, outbox_id)
        if row is None:
            raise NotFound(f"delivery {outbox_id} does not exist")
        if row.status == "delivered":
            raise InvalidTransition(f"delivery {outbox_id} was already delivered")
        row.status, row.attempts, row.next_attempt_at, row.published_at = "pending", 0, None, None
        uow.commit()
    return row


def list_deliveries(uow, status: str | None = None, kind: str | None = None, limit: int = 100,
                    before_id: int | None = None) -> list[OutboxMessage]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxMessage.status == status)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    if before_id:
        query = query.where(OutboxMessage.id < before_id)
    with uow:
        return list(uow.session.scalars(query))


def get_delivery(outbox_id: int, uow) -> OutboxMessage:
    with uow:
        row = uow.session.get(OutboxMessage, outbox_id)
        if row is None:
            raise NotFound(f"delivery {outbox_id} does not exist")
        return row


def is_postgres(uow) -> bool:
    return uow.session.get_bind().dialect.name == "postgresql"
