"""Message correlation: route a named message to the instances waiting for it, or start, or buffer it.

Which instance waits for which message is indexed in `message_subscriptions`, rewritten from every snapshot
in the same transaction (projection.apply_snapshot calls `sync_subscriptions`), so routing is a query.
Deliveries race through the instance's optimistic lock: the loser's transaction rolls back and is retried
from scratch, and then sees that the instance no longer waits.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from bpm import engine
from bpm.adapters.orm import ProcessDefinition, ProcessInstance
from bpm.adapters.orm_integrations import BufferedMessage, MessageStartEvent, MessageSubscription
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain import events
from bpm.domain.errors import ConcurrencyConflict, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services import definitions
from bpm.services.handlers import handles
from bpm.services.projection import apply_snapshot, record

MAX_ATTEMPTS = 5
MAX_TTL_SECONDS = 30 * 24 * 3600


@dataclass
class CorrelateMessage:
    name: str
    actor: Actor
    business_key: str | None = None
    instance_id: str | None = None
    correlation: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    ttl_seconds: int | None = None


@dataclass
class MessageResult:
    resumed: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    buffered_id: int | None = None

    @property
    def status(self) -> str:
        return "buffered" if self.buffered_id is not None else "correlated"


@dataclass(frozen=True)
class BufferedMessageMatched:
    """An instance started waiting for a message that was buffered for it."""

    instance_id: str
    buffer_id: int


# --- the command ------------------------------------------------------------------------------------------------


def correlate(cmd: CorrelateMessage, uow: UnitOfWork) -> MessageResult:
    """Deliver, start or buffer; a lost race on an instance is retried from a fresh transaction."""
    if not cmd.actor.may("messages"):
        raise PermissionDenied(f"'{cmd.actor.username}' may not send messages: missing role or token scope")
    _validate(cmd)
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _correlate_once(cmd, uow)
        except ConcurrencyConflict:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _validate(cmd: CorrelateMessage) -> None:
    if not cmd.name or not cmd.name.strip():
        raise ValidationFailed("a message needs a name", {"name": ["must not be empty"]})
    if cmd.ttl_seconds is not None and not 0 < cmd.ttl_seconds <= MAX_TTL_SECONDS:
        raise ValidationFailed("ttl out of range", {"ttl": [f"between 1 and {MAX_TTL_SECONDS} seconds"]})


def _correlate_once(cmd: CorrelateMessage, uow: UnitOfWork) -> MessageResult:
    with uow:
        result = MessageResult()
        for instance_id in _waiting_instances(uow, cmd):
            if _deliver(uow, instance_id, cmd.name, cmd.variables, cmd.actor.username):
                result.resumed.append(instance_id)
        if not result.resumed and cmd.instance_id is None:
            result.started = [_start_by_message(uow, definition, cmd)
                              for definition in _definitions_started_by(uow, cmd.name)]
        if not result.resumed and not result.started:
            if cmd.ttl_seconds is None:
                raise NotFound(f"no instance is waiting for message '{cmd.name}' with this correlation, "
                               "and no process starts with it (send `ttl` to buffer it)")
            result.buffered_id = _buffer(uow, cmd)
        uow.commit()
        return result


def _waiting_instances(uow: UnitOfWork, cmd: CorrelateMessage) -> list[str]:
    query = select(MessageSubscription).where(MessageSubscription.message_name == cmd.name)
    if cmd.instance_id:
        query = query.where(MessageSubscription.instance_id == cmd.instance_id)
    if cmd.business_key:
        query = query.where(MessageSubscription.business_key == cmd.business_key)
    rows = uow.session.scalars(query.order_by(MessageSubscription.id))
    found: list[str] = []
    for row in rows:
        if _matches(row.correlation, cmd.correlation) and row.instance_id not in found:
            found.append(row.instance_id)
    return found


def _matches(values: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(key in values and values[key] == value for key, value in (wanted or {}).items())


def _deliver(uow: UnitOfWork, instance_id: str, name: str, variables: dict[str, Any], actor: str | None) -> bool:
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None or instance.status != "running":
        return False
    definition = uow.session.get(ProcessDefinition, instance.definition_id)
    workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
    if not any(waiting.name == name for waiting in engine.waiting_messages(workflow)):
        # Its subscription was read before a concurrent delivery committed: it no longer waits (not a failure).
        return False
    with engine.clock_context(uow.clock.now):
        try:
            elements = engine.send_message(workflow, name, variables)
        except engine.EngineError as error:
            raise ValidationFailed(f"message '{name}' failed in the process: {error}",
                                   {"name": [str(error)]}, element_id=error.element_id) from error
        snap = engine.snapshot(workflow)
    record(uow, instance.id, "message.received", actor, element_id=elements[0] if elements else None,
           data={"name": name, "variables": variables})
    apply_snapshot(uow, instance, definition, snap, actor)
    return True


def _scripts_allowed(uow: UnitOfWork) -> bool:
    return bool(uow.settings and uow.settings.allow_scripts == "restricted")


# --- message start events ---------------------------------------------------------------------------------------


def index_start_messages(uow: UnitOfWork, rows: list[ProcessDefinition], _cmd=None) -> None:
    """Deploy hook: remember which new definition versions a message starts."""
    for definition in rows:
        for name in engine.start_message_names(definitions.runtime_for(definition)):
            uow.session.add(MessageStartEvent(definition_id=definition.id, process_key=definition.key,
                                              message_name=name))


def _definitions_started_by(uow: UnitOfWork, name: str) -> list[ProcessDefinition]:
    """The newest version of each process key, if that version starts with this message."""
    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
              .group_by(ProcessDefinition.key).subquery())
    query = (select(ProcessDefinition)
             .join(newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.version))
             .join(MessageStartEvent, MessageStartEvent.definition_id == ProcessDefinition.id)
             .where(MessageStartEvent.message_name == name).order_by(ProcessDefinition.key))
    return list(uow.session.scalars(query))


def _start_by_message(uow: UnitOfWork, definition: ProcessDefinition, cmd: CorrelateMessage) -> str:
    return _start_instance_by_message(uow, definition, cmd.name, cmd.variables, cmd.business_key,
                                      cmd.actor.username)


def _start_instance_by_message(uow: UnitOfWork, definition: ProcessDefinition, name: str,
                               variables: dict[str, Any], business_key: str | None, actor: str | None) -> str:
    workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).new_workflow()
    with engine.clock_context(uow.clock.now):
        try:
            engine.start(workflow, {})
            engine.send_message(workflow, name, variables)
        except engine.EngineError as error:
            raise ValidationFailed(f"starting '{definition.key}' by message '{name}' failed: {error}",
                                   {"name": [str(error)]}, element_id=error.element_id) from error
        snap = engine.snapshot(workflow)
    instance = ProcessInstance(id=str(uuid.uuid4()), definition_id=definition.id, process_key=definition.key,
                               business_key=business_key, status="running", state_json=snap.state_json,
                               started_by=actor, started_at=uow.clock.now())
    uow.session.add(instance)
    record(uow, instance.id, "instance.started", actor,
           data={"process_key": definition.key, "version": definition.version, "business_key": business_key,
                 "message": name, "variables": variables})
    uow.publish(events.InstanceStarted(instance.id, definition.key, business_key, actor))
    apply_snapshot(uow, instance, definition, snap, actor, new=True)
    return instance.id


# --- buffering ----------------------------------------------------------------------------------------------------


def _buffer(uow: UnitOfWork, cmd: CorrelateMessage) -> int:
    now = uow.clock.now()
    row = BufferedMessage(name=cmd.name, business_key=cmd.business_key, instance_id=cmd.instance_id,
                          correlation=cmd.correlation or {}, variables=cmd.variables or {},
                          sent_by=cmd.actor.username, created_at=now,
                          expires_at=now + timedelta(seconds=cmd.ttl_seconds))
    uow.session.add(row)
    uow.session.flush()
    return row.id


def _buffered_for(uow: UnitOfWork, instance: ProcessInstance, waiting: engine.WaitingMessage):
    query = (select(BufferedMessage)
             .where(BufferedMessage.name == waiting.name, BufferedMessage.delivered_at.is_(None),
                    BufferedMessage.expires_at > uow.clock.now())
             .order_by(BufferedMessage.id))
    for row in uow.session.scalars(query):
        if row.instance_id and row.instance_id != instance.id:
            continue
        if row.business_key and row.business_key != instance.business_key:
            continue
        if _matches(waiting.variables, row.correlation):
            return row
    return None


@handles(BufferedMessageMatched)
def deliver_buffered(event: BufferedMessageMatched, uow: UnitOfWork) -> None:
    """Claim the buffered row (only one instance may take it) and deliver it in this transaction."""
    uow.flush()
    row = uow.session.get(BufferedMessage, event.buffer_id)
    claimed = uow.session.execute(
        update(BufferedMessage).where(BufferedMessage.id == event.buffer_id, BufferedMessage.delivered_at.is_(None))
        .values(delivered_at=uow.clock.now(), delivered_to=event.instance_id)).rowcount
    if claimed != 1 or row is None:
        return
    _deliver(uow, event.instance_id, row.name, row.variables or {}, row.sent_by)


# --- the projection hook ------------------------------------------------------------------------------------------


def sync_subscriptions(uow: UnitOfWork, instance: ProcessInstance, snap: engine.Snapshot, new: bool,
                       existing: set[tuple[str, str]] | None = None) -> None:
    """Keep `message_subscriptions` equal to what the snapshot waits for; look up buffered messages for new ones.
    Then route the messages the step threw (and nothing in the instance caught) within the same deployment.

    `existing`: the (message name, element id) pairs stored before this step, when the caller read them."""
    _sync_subscription_rows(uow, instance, snap, new, existing)
    if snap.thrown:
        route_thrown(uow, instance, snap.thrown)


def _sync_subscription_rows(uow: UnitOfWork, instance: ProcessInstance, snap: engine.Snapshot, new: bool,
                            existing: set[tuple[str, str]] | None) -> None:
    waiting = snap.messages if instance.status == "running" else []
    wanted = {(w.name, w.element_id) for w in waiting}
    if existing is None:
        existing = set() if new else {(r.message_name, r.element_id) for r in uow.session.scalars(
            select(MessageSubscription).where(MessageSubscription.instance_id == instance.id))}
    if wanted == existing:
        return
    if existing:
        uow.session.execute(delete(MessageSubscription).where(MessageSubscription.instance_id == instance.id))
    for item in waiting:
        uow.session.add(MessageSubscription(
            instance_id=instance.id, process_key=instance.process_key, business_key=instance.business_key,
            message_name=item.name, element_id=item.element_id, correlation=item.variables,
            created_at=uow.clock.now()))
    _announce_buffered(uow, instance, [w for w in waiting if (w.name, w.element_id) not in existing])


def _announce_buffered(uow: UnitOfWork, instance: ProcessInstance, added: list[engine.WaitingMessage]) -> None:
    for item in added:
        row = _buffered_for(uow, instance, item)
        if row is not None:
            uow.publish(BufferedMessageMatched(instance.id, row.id))
            return  # one message at a time: the next snapshot looks again


if index_start_messages not in definitions.DEPLOY_HOOKS:
    definitions.DEPLOY_HOOKS.append(index_start_messages)


# --- messages thrown by a process ------------------------------------------------------------------------------
# A throw event (or message end event, send task) whose message nothing in its own instance catches is routed in
# the throwing command's transaction within its deployment: the definitions deployed from the same file (same
# checksum), which is how one BPMN collaboration with several executable pools arrives. A message has one
# receiver, as in BPMN: the oldest waiting subscription (with the same business key when the thrower has one);
# else a new instance of the newest version of a process of the deployment whose message start event catches it;
# else the thrower's history records it as undelivered. A receiver's step may throw in turn; the chain is bounded.

MAX_ROUTING_DEPTH = 20
_routing_depth: contextvars.ContextVar[int] = contextvars.ContextVar("message_routing_depth", default=0)


def route_thrown(uow: UnitOfWork, thrower: ProcessInstance, thrown: list[engine.ThrownMessage]) -> None:
    definition = uow.session.get(ProcessDefinition, thrower.definition_id)
    depth = _routing_depth.get()
    token = _routing_depth.set(depth + 1)
    try:
        for message in thrown:
            if depth >= MAX_ROUTING_DEPTH:
                outcome = {"error": f"not routed: more than {MAX_ROUTING_DEPTH} messages in a chain in one command"}
            else:
                outcome = _route_one(uow, thrower, definition, message)
            record(uow, thrower.id, "message.thrown", None, data={"name": message.name, **outcome})
    finally:
        _routing_depth.reset(token)


def _route_one(uow: UnitOfWork, thrower: ProcessInstance, definition: ProcessDefinition,
               message: engine.ThrownMessage) -> dict[str, Any]:
    query = (select(MessageSubscription)
             .join(ProcessInstance, ProcessInstance.id == MessageSubscription.instance_id)
             .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
             .where(MessageSubscription.message_name == message.name, MessageSubscription.instance_id != thrower.id,
                    ProcessInstance.status == "running", ProcessDefinition.checksum == definition.checksum)
             .order_by(MessageSubscription.id))
    if thrower.business_key:
        query = query.where(MessageSubscription.business_key == thrower.business_key)
    try:
        for subscription in list(uow.session.scalars(query)):
            variables = message.variables_for(subscription.element_id)
            if _deliver(uow, subscription.instance_id, message.name, variables, None):
                return {"delivered_to": subscription.instance_id, "element_id": subscription.element_id}
        for target in _deployment_definitions_started_by(uow, definition.checksum, message.name):
            variables = message.variables_for(engine.start_message_element(definitions.runtime_for(target),
                                                                           message.name) or target.key)
            started = _start_instance_by_message(uow, target, message.name, variables, thrower.business_key, None)
            return {"started": started, "process_key": target.key}
    except ValidationFailed as error:  # the receiver failed: the thrower's step stands, the failure is recorded
        return {"error": error.detail}
    return {"error": "not delivered: no instance of this deployment waits for it and no process of it starts with it"}


def _deployment_definitions_started_by(uow: UnitOfWork, checksum: str, name: str) -> list[ProcessDefinition]:
    """The newest version, among those deployed from the same file, of each process this message starts."""
    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
              .where(ProcessDefinition.checksum == checksum).group_by(ProcessDefinition.key).subquery())
    query = (select(ProcessDefinition)
             .join(newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.version))
             .join(MessageStartEvent, MessageStartEvent.definition_id == ProcessDefinition.id)
             .where(MessageStartEvent.message_name == name).order_by(ProcessDefinition.key))
    return list(uow.session.scalars(query))
