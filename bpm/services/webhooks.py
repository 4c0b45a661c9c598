"""Webhook subscriptions: integrators register a URL for domain events; each event becomes outbox rows.

Nothing is sent here. A handler adds one outbox row (kind "webhook") per matching subscription in the
transaction that produced the event; the outbox consumer signs the body (HMAC-SHA256 over timestamp + body)
and retries with backoff. `webhook_deliveries` links a subscription to its outbox rows for the delivery log.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import exists, select

from bpm.adapters.orm import ProcessInstance
from bpm.adapters.orm_integrations import WebhookDelivery, WebhookSubscription
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain import events
from bpm.domain.errors import NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services.handlers import handles

# Event name in the API -> domain event class names (looked up by name: some are published by other areas).
EVENT_CLASSES = {
    "instance.started": ("InstanceStarted",),
    "instance.completed": ("InstanceCompleted",),
    "instance.cancelled": ("InstanceCancelled",),
    "task.created": ("TaskCreated",),
    "task.completed": ("TaskCompleted",),
    "task.overdue": ("TaskOverdue",),
    "task.due_changed": ("TaskDueChanged",),
    "incident.created": ("IncidentOpened", "IncidentCreated"),
}
EVENT_NAMES = tuple(EVENT_CLASSES)
FORMATS = ("generic", "dingtalk", "wecom")
MANAGERS = frozenset({"admin", "integrator"})


@dataclass
class WebhookInput:
    url: str
    events: list[str]
    process_key: str | None = None
    secret: str | None = None
    format: str = "generic"
    active: bool = True
    description: str = ""


def _require_manager(actor: Actor) -> None:
    if not (actor.is_admin or ("integrator" in actor.roles and actor.may("messages"))):
        raise PermissionDenied("only admins and integrators manage webhooks")


def _validate(data: WebhookInput) -> None:
    errors: dict[str, list[str]] = {}
    parsed = urlparse(data.url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        errors["url"] = ["an absolute http(s) URL"]
    unknown = [e for e in data.events if e not in EVENT_NAMES]
    if not data.events or unknown:
        errors["events"] = [f"one or more of {', '.join(EVENT_NAMES)}" + (f"; unknown: {unknown}" if unknown else "")]
    if data.format not in FORMATS:
        errors["format"] = [f"one of {', '.join(FORMATS)}"]
    if errors:
        raise ValidationFailed("invalid webhook subscription", errors)


# --- CRUD ------------------------------------------------------------------------------------------------------


def create_subscription(data: WebhookInput, actor: Actor, uow: UnitOfWork) -> tuple[WebhookSubscription, str]:
    """Returns the row and its secret (generated when absent): the only time the secret is shown."""
    _require_manager(actor)
    _validate(data)
    secret = data.secret or secrets.token_urlsafe(32)
    with uow:
        row = WebhookSubscription(url=data.url, events=list(dict.fromkeys(data.events)), process_key=data.process_key,
                                  secret=secret, format=data.format, active=data.active,
                                  description=data.description or "", created_by=actor.username,
                                  created_at=uow.clock.now())
        uow.session.add(row)
        uow.commit()
        return row, secret


def list_subscriptions(actor: Actor, uow: UnitOfWork) -> list[WebhookSubscription]:
    _require_manager(actor)
    with uow:
        return list(uow.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def _get(uow: UnitOfWork, subscription_id: int) -> WebhookSubscription:
    row = uow.session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFound(f"webhook subscription {subscription_id} not found")
    return row


def get_subscription(subscription_id: int, actor: Actor, uow: UnitOfWork) -> WebhookSubscription:
    _require_manager(actor)
    with uow:
        return _get(uow, subscription_id)


def update_subscription(subscription_id: int, changes: dict[str, Any], actor: Actor,
                        uow: UnitOfWork) -> WebhookSubscription:
    _require_manager(actor)
    with uow:
        row = _get(uow, subscription_id)
        merged = WebhookInput(url=changes.get("url", row.url), events=changes.get("events", row.events),
                              process_key=changes.get("process_key", row.process_key),
                              format=changes.get("format", row.format), active=changes.get("active", row.active),
                              description=changes.get("description", row.description))
        _validate(merged)
        for name in ("url", "events", "process_key", "format", "active", "description"):
            setattr(row, name, getattr(merged, name))
        if changes.get("secret"):
            row.secret = changes["secret"]
        uow.commit()
        return row


def delete_subscription(subscription_id: int, actor: Actor, uow: UnitOfWork) -> None:
    _require_manager(actor)
    with uow:
        uow.session.delete(_get(uow, subscription_id))
        uow.commit()


# --- deliveries ---------------------------------------------------------------------------------------------------


def list_deliveries(subscription_id: int, actor: Actor, uow: UnitOfWork, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first, with the outbox row's status, attempts and last error."""
    _require_manager(actor)
    with uow:
        _get(uow, subscription_id)
        query = (select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
                 .order_by(WebhookDelivery.id.desc()).limit(limit))
        rows = list(uow.session.scalars(query))
        return [_describe_delivery(uow, row) for row in rows]


def _describe_delivery(uow: UnitOfWork, row: WebhookDelivery) -> dict[str, Any]:
    described = {"id": row.id, "event": row.event, "created_at": row.created_at, "body": row.body,
                 "outbox_id": row.outbox_id, "redelivery_of": row.redelivery_of, "status": "pending",
                 "attempts": 0, "last_error": None, "delivered_at": None}
    message = _outbox_row(uow, row.outbox_id)
    if message is not None:
        described.update(status=message.status, attempts=message.attempts, last_error=message.last_error,
                         delivered_at=message.delivered_at)
    return described


def _outbox_row(uow: UnitOfWork, outbox_id: str | None):
    try:
        from bpm.adapters.orm_outbox import OutboxMessage
    except ImportError:  # pragma: no cover - the outbox area is not installed
        return None
    return uow.session.get(OutboxMessage, int(outbox_id)) if outbox_id else None


def redeliver(subscription_id: int, delivery_id: int, actor: Actor, uow: UnitOfWork) -> dict[str, Any]:
    """Send one delivery again: a failed or waiting outbox row is retried now; a delivered one is re-enqueued."""
    _require_manager(actor)
    with uow:
        subscription = _get(uow, subscription_id)
        original = uow.session.get(WebhookDelivery, delivery_id)
        if original is None or original.subscription_id != subscription_id:
            raise NotFound(f"delivery {delivery_id} of webhook {subscription_id} not found")
        message = _outbox_row(uow, original.outbox_id)
        if message is not None and message.status in ("failed", "pending"):
            message.status, message.attempts, message.next_attempt_at, message.published_at = "pending", 0, None, None
            row = original
        else:
            count = len(list(uow.session.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.redelivery_of == original.id))))
            row = _enqueue(uow, subscription, original.event, original.body,
                           f"{original.dedupe_key}:again:{count + 1}", redelivery_of=original.id)
        uow.commit()
        return _describe_delivery(uow, row)


# --- event handlers -------------------------------------------------------------------------------------------


def _event_body(name: str, event: Any, now: datetime) -> dict[str, Any]:
    data = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else dict(vars(event))
    return {"event": name, "occurred_at": now.isoformat(), "data": _jsonable(data)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _process_key(uow: UnitOfWork, event: Any) -> str | None:
    key = getattr(event, "process_key", None)
    if key is None and getattr(event, "instance_id", None):
        instance = uow.session.get(ProcessInstance, event.instance_id)
        key = instance.process_key if instance is not None else None
    return key


def _subscribers(uow: UnitOfWork, name: str, process_key: str | None) -> list:
    rows = _active_subscriptions(uow)
    return [row for row in rows if name in (row.events or [])
            and (row.process_key is None or row.process_key == process_key)]


def _active_subscriptions(uow: UnitOfWork) -> list:
    """Read once per transaction (a command publishes several events: task completed, task created ...), as
    plain rows with the columns delivery needs: no ORM objects on every command's path."""
    cached = getattr(uow, "_webhook_subscriptions", None)
    if cached is None or cached[0] is not uow.session:
        cached = (uow.session, list(uow.session.execute(_active_query())))
        uow._webhook_subscriptions = cached
    return cached[1]


def any_active_column():
    """A column a command's first query can carry (true when some subscription is active), so that a command
    on a server without webhooks does not spend a statement reading none: see `note_any_active`."""
    return exists().where(WebhookSubscription.active.is_(True)).label("webhooks_active")


def note_any_active(uow: UnitOfWork, any_active: bool) -> None:
    """What `any_active_column` said: with none active, the events of this transaction read no subscriptions."""
    if not any_active:
        uow._webhook_subscriptions = (uow.session, [])


@functools.cache
def _active_query():
    """Built once: building a statement costs about as much CPU as sending it."""
    table = WebhookSubscription.__table__
    return (select(table.c.id, table.c.url, table.c.events, table.c.process_key, table.c.secret, table.c.format)
            .where(table.c.active.is_(True)))


def _dedupe_key(name: str, event: Any, subscription_id: int) -> str:
    subject = getattr(event, "task_id", None) or getattr(event, "instance_id", None) or id(event)
    extra = (getattr(event, "incident_id", None) or getattr(event, "changed_at", None)
             or getattr(event, "due_at", None) or "")
    return f"webhook:{subscription_id}:{name}:{subject}:{extra}"[:255]


def _enqueue(uow: UnitOfWork, subscription: WebhookSubscription, name: str, body: dict[str, Any], dedupe_key: str,
             redelivery_of: int | None = None) -> WebhookDelivery:
    from bpm.services import outbox

    payload = {"url": subscription.url, "secret": subscription.secret, "body": body, "event": name,
               "format": subscription.format}
    outbox_id = outbox.enqueue(uow, "webhook", payload, dedupe_key)
    row = WebhookDelivery(subscription_id=subscription.id, event=name, body=body, dedupe_key=dedupe_key,
                          outbox_id=str(outbox_id) if outbox_id is not None else None,
                          redelivery_of=redelivery_of, created_at=uow.clock.now())
    uow.session.add(row)
    uow.session.flush()
    return row


def _handler_for(name: str):
    def on_event(event: Any, uow: UnitOfWork) -> None:
        subscribers = _subscribers(uow, name, _process_key(uow, event))
        if not subscribers:
            return
        body = _event_body(name, event, uow.clock.now())
        for subscription in subscribers:
            _enqueue(uow, subscription, name, body, _dedupe_key(name, event, subscription.id))

    on_event.__name__ = f"webhook_{name.replace('.', '_')}"
    return on_event


def register_handlers() -> None:
    for name, class_names in EVENT_CLASSES.items():
        for class_name in class_names:
            event_type = getattr(events, class_name, None)
            if event_type is not None:
                handles(event_type)(_HANDLERS.setdefault(name, _handler_for(name)))


_HANDLERS: dict[str, Any] = {}
register_handlers()
