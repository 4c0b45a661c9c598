"""Starting, reading and cancelling process instances."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.exc import IntegrityError

from bpm import engine
from bpm.adapters import loaded_rows
from bpm.adapters.orm import (
    HistoryEntry,
    ProcessDefinition,
    ProcessInstance,
    Task,
    TaskCandidate,
    Timer,
    task_status_is,
)
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain import events
from bpm.domain.errors import (
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from bpm.domain.model import Actor
from bpm.services import definitions, webhooks
from bpm.services.projection import apply_snapshot, archived_chunks, record


@dataclass
class StartInstance:
    process_key: str
    actor: Actor
    business_key: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    version: int | None = None
    idempotency_key: str | None = None


@dataclass
class StartResult:
    instance: ProcessInstance
    created: bool
    detail: dict[str, Any] | None = None  # describe_instance's answer, when the command could give it exactly


def start_instance(cmd: StartInstance, uow: UnitOfWork) -> StartResult:
    _require(cmd.actor, "start")
    request_hash = _request_hash(cmd)
    with uow:
        if cmd.idempotency_key:
            existing = _find_idempotent(uow, cmd, request_hash)
            if existing is not None:
                return StartResult(existing, created=False)
        definition = _definition_to_start(uow, cmd)
        instance, workflow, snap = _run_new_instance(uow, definition, cmd, request_hash)
        try:
            uow.commit()
        except IntegrityError as error:  # a concurrent request with the same Idempotency-Key won
            raise IdempotencyConflict("a request with this Idempotency-Key is being processed; retry") from error
        return StartResult(instance, created=True,
                           detail=_described_by_command(uow, instance, definition, workflow, snap))


def _definition_to_start(uow, cmd: StartInstance) -> ProcessDefinition:
    """The definition to run (texts deferred), read as a Core row (bpm.adapters.loaded_rows); the same round trip
    says whether any webhook subscription is active, so the start's events need not look when none is."""
    row = loaded_rows.first_row(uow.session, _start_query(cmd.version is not None),
                                definitions.definition_parameters(cmd.process_key, cmd.version))
    found = loaded_rows.objects(uow.session, row, definitions.DEFINITION_WITHOUT_TEXTS)[0] if row else None
    definition = definitions.definition_found(found, cmd.process_key, cmd.version)
    webhooks.note_any_active(uow, row.webhooks_active)
    return definition


@functools.cache
def _start_query(pinned: bool):
    """The definition's SELECT with the webhook column, built once per shape (see definitions.definition_query)."""
    return definitions.definition_row_query(pinned).add_columns(webhooks.any_active_column())


def _described_by_command(uow, instance, definition, workflow, snap: engine.Snapshot) -> dict[str, Any] | None:
    """describe_instance's answer for the instance this command just started and committed, from what the command
    holds (the workflow, the task rows it created), so the start response needs no second transaction and no
    restore. None, i.e. read it back, when the instance moved on after the step (a commit-time handler reused
    an approval), the step archived part of the history, or it planned timers (their rows are not kept)."""
    if instance.state_json is not snap.state_json or snap.archive is not None or snap.timers:
        return None
    open_tasks = [uow.row_in_session(Task, task.id, load=False) for task in snap.open_tasks]
    if any(task is None or task.status != "open" for task in open_tasks):
        return None
    return _description(instance, definition, workflow, open_tasks, timers=[])


def _run_new_instance(uow, definition: ProcessDefinition, cmd: StartInstance, request_hash: str):
    runtime = definitions.runtime_for(definition, _scripts_allowed(uow))
    workflow = runtime.new_workflow()
    with engine.clock_context(uow.clock.now):
        _run(lambda: engine.start(workflow, cmd.variables))
        snap = engine.snapshot(workflow)
    now = uow.clock.now()
    instance = ProcessInstance(id=str(uuid.uuid4()), definition_id=definition.id, process_key=definition.key,
                               business_key=cmd.business_key, status="running", state_json=snap.state_json,
                               started_by=cmd.actor.username, started_at=now,
                               idempotency_key=cmd.idempotency_key,
                               request_hash=request_hash if cmd.idempotency_key else None)
    uow.add(instance)
    record(uow, instance.id, "instance.started", cmd.actor.username,
           data={"process_key": definition.key, "version": definition.version,
                 "business_key": cmd.business_key, "variables": cmd.variables})
    uow.publish(events.InstanceStarted(instance.id, definition.key, cmd.business_key, cmd.actor.username))
    apply_snapshot(uow, instance, definition, snap, cmd.actor.username, new=True)
    return instance, workflow, snap


def _run(step) -> None:
    """Run an engine step; a BPMN element failing at run time is a 422 naming the element."""
    try:
        step()
    except engine.EngineError as error:
        where = f" at {error.element_name or error.element_id}" if error.element_id else ""
        raise ValidationFailed(f"the process failed{where}: {error}",
                               {"element_id": [error.element_id or ""]}, element_id=error.element_id) from error


def _scripts_allowed(uow: UnitOfWork) -> bool:
    return bool(uow.settings and uow.settings.allow_scripts == "restricted")


def _request_hash(cmd: StartInstance) -> str:
    body = json.dumps({"key": cmd.process_key, "version": cmd.version, "business_key": cmd.business_key,
                       "variables": cmd.variables}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _find_idempotent(uow, cmd: StartInstance, request_hash: str) -> ProcessInstance | None:
    existing = uow.session.scalar(select(ProcessInstance).where(
        ProcessInstance.started_by == cmd.actor.username, ProcessInstance.idempotency_key == cmd.idempotency_key))
    if existing is not None and existing.request_hash != request_hash:
        raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
    return existing


def _require(actor: Actor, permission: str) -> None:
    if not actor.may(permission):
        raise PermissionDenied(f"'{actor.username}' may not {permission} (roles or token scopes)")


# --- reading -------------------------------------------------------------------------------------------------------


def get_instance(uow: UnitOfWork, instance_id: str) -> ProcessInstance:
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"process instance '{instance_id}' not found")
    return instance


BROAD_READERS = frozenset({"admin", "designer", "integrator"})


def may_read_instance(uow: UnitOfWork, actor: Actor, instance: ProcessInstance) -> bool:
    """Admins, designers and integrators see every instance; approvers those they started or have a task in."""
    if actor.may("read") and actor.roles & BROAD_READERS:
        return True
    if instance.started_by == actor.username:
        return True
    tasks = uow.session.scalars(select(Task).where(Task.instance_id == instance.id))
    if any(t.assignee == actor.username or t.completed_by == actor.username
           or actor.username in t.candidate_users or actor.groups.intersection(t.candidate_groups)
           for t in tasks):
        return True
    from bpm.services.collaboration import reads_instance_through_approvals

    return reads_instance_through_approvals(uow, actor, instance.id)


def describe_instance(uow: UnitOfWork, actor: Actor, instance_id: str) -> dict[str, Any]:
    with uow:
        instance = get_instance(uow, instance_id)
        if not may_read_instance(uow, actor, instance):
            raise PermissionDenied("you may not read this instance")
        definition = uow.session.get(ProcessDefinition, instance.definition_id)
        workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(
            instance.state_json, archived_chunks(uow, instance.id))  # the path taken: the whole history
        open_tasks = list(uow.session.scalars(select(Task).where(Task.instance_id == instance.id,
                                                                 Task.status == "open")))
        waiting_timers = list(uow.session.scalars(select(Timer).where(Timer.instance_id == instance.id,
                                                                      Timer.status == "waiting")
                                                  .order_by(Timer.due_at)))
        return _description(instance, definition, workflow, open_tasks, waiting_timers)


def _description(instance, definition, workflow, open_tasks: list, timers: list) -> dict[str, Any]:
    """What an instance's detail shows: its rows, its variables and the path taken (from the whole workflow)."""
    return {"instance": instance, "definition": definition, "variables": engine.variables_of(workflow),
            "open_tasks": open_tasks, "path": engine.completed_elements(workflow), "timers": timers}


@dataclass
class InstanceFilter:
    status: str | None = None
    process_key: str | None = None
    business_key: str | None = None
    started_by: str | None = None
    limit: int = 50
    after: str | None = None


def list_instances(uow: UnitOfWork, actor: Actor, query: InstanceFilter) -> list[ProcessInstance]:
    _require(actor, "read")
    with uow:
        return list(uow.session.scalars(list_statement(actor, query)))


def list_statement(actor: Actor, query: InstanceFilter):
    """The page of `list_instances`: in id order, after the cursor, filtered, and for an approver (not an admin,
    designer or integrator) only the instances they are involved in."""
    statement = with_filters(select(ProcessInstance), query)
    if query.started_by:
        statement = statement.where(ProcessInstance.started_by == query.started_by)
    if query.after:
        statement = statement.where(ProcessInstance.id > query.after)
    if not actor.roles & BROAD_READERS:
        statement = statement.where(ProcessInstance.id.in_(_involved_ids(actor, query)))
    return statement.order_by(ProcessInstance.id).limit(query.limit)


def with_filters(statement, query):
    """The filters every instance list offers: status, process key and business key (when given)."""
    for column, value in ((ProcessInstance.status, query.status), (ProcessInstance.process_key, query.process_key),
                          (ProcessInstance.business_key, query.business_key)):
        if value:
            statement = statement.where(column == value)
    return statement


def _involved_ids(actor: Actor, query: InstanceFilter):
    """Ids of the instances an approver started or has (had) a task in: what the list shows them (cf.
    may_read_instance). They are gathered from the approver's own index entries (instances started, tasks
    assigned or completed, candidate rows of their name and groups, open or closed), then the instances read by
    primary key: a condition tried on every instance in id order would read the whole table for an approver who
    is in few of them.

    When the list is filtered by nothing but the cursor, only the page's ids are kept (the first `limit` after
    the cursor, in id order), so only the page's instances are read instead of walking the instances in id order
    and testing each (some 6,000 rows read for the first 50 of 3,000 involved instances). With a filter on the
    instances' own columns the whole union is the test, as a page of ids could hold none that match."""
    me = actor.username
    offered = select(TaskCandidate.instance_id)
    involved = union(
        select(ProcessInstance.id).where(ProcessInstance.started_by == me),
        select(Task.instance_id).where(Task.assignee == me),
        select(Task.instance_id).where(task_status_is("completed"), Task.completed_by == me),
        offered.where(TaskCandidate.kind == "u", TaskCandidate.name == me),
        offered.where(TaskCandidate.kind == "g", TaskCandidate.name.in_(sorted(actor.groups))))
    if query.status or query.process_key or query.business_key or query.started_by:
        return involved
    ids = involved.subquery("involved")
    page = select(ids.c.id)
    if query.after:
        page = page.where(ids.c.id > query.after)
    return page.order_by(ids.c.id).limit(query.limit)


def instance_history(uow: UnitOfWork, actor: Actor, instance_id: str) -> list[HistoryEntry]:
    with uow:
        instance = get_instance(uow, instance_id)
        if not may_read_instance(uow, actor, instance):
            raise PermissionDenied("you may not read this instance")
        return list(uow.session.scalars(select(HistoryEntry).where(HistoryEntry.instance_id == instance_id)
                                        .order_by(HistoryEntry.id)))


# --- cancelling ----------------------------------------------------------------------------------------------------


@dataclass
class CancelInstance:
    instance_id: str
    actor: Actor
    reason: str | None = None


def cancel_instance(cmd: CancelInstance, uow: UnitOfWork) -> ProcessInstance:
    with uow:
        instance = get_instance(uow, cmd.instance_id)
        if not (cmd.actor.may("cancel") or instance.started_by == cmd.actor.username):
            raise PermissionDenied("only the initiator, an integrator, a designer or an admin may cancel")
        if instance.status != "running":
            raise InvalidTransition(f"the instance is already {instance.status}")
        definition = uow.session.get(ProcessDefinition, instance.definition_id)
        workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
        engine.cancel(workflow)
        instance.status = "cancelled"
        instance.ended_at = uow.clock.now()
        apply_snapshot(uow, instance, definition, engine.snapshot(workflow), cmd.actor.username)
        record(uow, instance.id, "instance.cancelled", cmd.actor.username, data={"reason": cmd.reason})
        uow.publish(events.InstanceCancelled(instance.id, instance.process_key, instance.business_key,
                                             cmd.actor.username, cmd.reason))
        uow.commit()
        return instance
