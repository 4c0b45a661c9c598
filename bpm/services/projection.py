"""Write what an engine step produced: the state row, the task projection, timers and history.

Every command that moves an instance ends here, so the inbox, the scheduler and the audit trail can never
disagree with the workflow state: they are written in the same transaction.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, delete, exists, literal_column, null, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import identity_key

from bpm import engine, expressions
from bpm.adapters import loaded_rows
from bpm.adapters.orm import (
    BigId,
    HistoryEntry,
    InstanceArchive,
    ProcessDefinition,
    ProcessInstance,
    Task,
    Timer,
    UTCDateTime,
)
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain import events
from bpm.domain.errors import ValidationFailed
from bpm.services import definitions

DEFAULT_PRIORITY = 50


def record(uow: UnitOfWork, instance_id: str, event: str, actor: str | None = None, *, element_id=None,
           element_name=None, task_id=None, data: dict[str, Any] | None = None) -> None:
    """Append a history row. Rows are kept on the unit of work and written in recording order with one
    multi-row INSERT when the transaction flushes or commits (bpm.adapters.unit_of_work.write_appended):
    history is append-only, so no ORM object, identity map entry or RETURNING of ids is needed."""
    uow.append_row(HistoryEntry.__table__, {
        "instance_id": instance_id, "at": uow.clock.now(), "event": event, "actor": actor,
        "element_id": element_id, "element_name": element_name, "task_id": task_id, "data": data or {}})


def apply_snapshot(uow: UnitOfWork, instance: ProcessInstance, definition: ProcessDefinition,
                   snap: engine.Snapshot, actor: str | None, *, new: bool = False,
                   existing: _Existing | None = None) -> None:
    """`existing`: what the projection tables held before the step, when the caller already knows it
    (`known_existing`); otherwise it is read here (nothing for a new instance)."""
    instance.state_json = snap.state_json
    _store_archive(uow, instance.id, snap.archive)
    if existing is None:
        existing = _Existing() if new else _existing_rows(uow, instance.id)
    _record_decisions(uow, instance, definition, snap.decisions, actor)
    for line in snap.script_output:  # what restricted scripts printed: history only, never stdout
        record(uow, instance.id, "script.output", actor, element_id=line.element_id, element_name=line.element_name,
               data={"text": line.text})
    _project_tasks(uow, instance, definition, snap.open_tasks, existing.task_ids)
    _project_timers(uow, instance, snap.timers, existing.timers)
    if snap.completed and instance.status == "running":
        instance.status = "completed"
        instance.ended_at = uow.clock.now()
        record(uow, instance.id, "instance.completed", None)
        uow.publish(events.InstanceCompleted(instance.id, instance.process_key, instance.business_key))
    _sync_integrations(uow, instance, snap, new, existing.messages)


def _store_archive(uow: UnitOfWork, instance_id: str, update: engine.ArchiveUpdate | None) -> None:
    """Finished tasks the state let go are appended to the instance's archive; a state restored with its archive
    replaces it."""
    if update is None:
        return
    table = InstanceArchive.__table__
    if update.replace:
        uow.session.execute(delete(table).where(table.c.instance_id == instance_id))
    if update.chunk is not None:
        uow.append_row(table, {"instance_id": instance_id, "tasks": update.chunk})


def archived_chunks(uow: UnitOfWork, instance_id: str) -> list[str]:
    """The instance's archive, oldest chunk first: with its state, the whole task tree (engine.merge_archive)."""
    table = InstanceArchive.__table__
    return list(uow.session.scalars(select(table.c.tasks).where(table.c.instance_id == instance_id)
                                    .order_by(table.c.id)))


def _sync_integrations(uow, instance, snap: engine.Snapshot, new: bool, existing: set | None = None) -> None:
    """Message subscriptions (bpm.services.messages) follow the snapshot in the same transaction."""
    from bpm.services import messages  # late: messages imports this module

    messages.sync_subscriptions(uow, instance, snap, new, existing)


class _Existing:
    """What the projection tables hold for an instance before this step (read in one round trip)."""

    def __init__(self):
        self.task_ids: list[str] = []  # open tasks
        self.timers: dict[str, tuple[int, Any]] = {}  # waiting timers: engine task id -> (row id, due_at)
        self.messages: set[tuple[str, str]] = set()  # message subscriptions: (message name, element id)


def existing_summary_columns(task) -> tuple:
    """Columns a completion's load can carry about the instance of the loaded `task` (the mapped Task class or an
    alias of it): whether another of its tasks is open, whether a timer waits, whether a message is awaited
    (index lookups on the instance id). With them, `known_existing` spares the common step the query of
    `_existing_rows`. The other tasks are read through an alias: an unaliased Task in the subquery would be
    the loaded row itself, and the question would be about every open task in the table."""
    from bpm.adapters.orm_integrations import MessageSubscription  # late: keeps the core tables importable alone

    other = aliased(Task, name="other_task")
    others_open = exists().where(other.instance_id == task.instance_id, other.status == "open", other.id != task.id)
    waiting = exists().where(Timer.instance_id == task.instance_id, Timer.status == "waiting")
    awaited = exists().where(MessageSubscription.instance_id == task.instance_id)
    return others_open.label("others_open"), waiting.label("timers_waiting"), awaited.label("messages_awaited")


def known_existing(row, open_task_id: str) -> _Existing | None:
    """From a row with `existing_summary_columns`, read with the open task `open_task_id`: the projection holds
    that task and nothing else to compare with the step; None when there is more (read it)."""
    if row.others_open or row.timers_waiting or row.messages_awaited:
        return None
    existing = _Existing()
    existing.task_ids = [open_task_id]
    return existing


def _existing_rows(uow, instance_id: str) -> _Existing:
    """Open task ids, waiting timers and message subscriptions of the instance: one UNION ALL instead of three
    ORM queries, read as Core rows on the session's connection (bpm.adapters.loaded_rows). Rows are loaded as
    objects only when the step changes them (a withdrawn task, a moved timer)."""
    return existing_from(loaded_rows.all_rows(uow.session, _existing_query(), {"instance_id": instance_id}))


def existing_from(rows) -> _Existing:
    """What the projection holds, from the rows of `_existing_query`."""
    existing = _Existing()
    for kind, ref, row_id, due_at, extra in rows:
        if kind == "t":
            existing.task_ids.append(ref)
        elif kind == "w":
            existing.timers[ref] = (row_id, due_at)
        else:
            existing.messages.add((ref, extra))
    return existing


@functools.cache
def _existing_query():
    """Built once (building a statement costs as much CPU as sending it); the instance id is a bound parameter."""
    from bpm.adapters.orm_integrations import MessageSubscription  # late: keeps the core tables importable alone

    instance_id = bindparam("instance_id")
    no_id, no_due, no_text = cast(null(), BigId), cast(null(), UTCDateTime), cast(null(), String)
    return union_all(
        select(literal_column("'t'").label("kind"), Task.id.label("ref"), no_id.label("row_id"),
               no_due.label("due_at"), no_text.label("extra"))
        .where(Task.instance_id == instance_id, Task.status == "open"),
        select(literal_column("'w'"), Timer.task_id, Timer.id, Timer.due_at, no_text)
        .where(Timer.instance_id == instance_id, Timer.status == "waiting"),
        select(literal_column("'m'"), MessageSubscription.message_name, no_id, no_due, MessageSubscription.element_id)
        .where(MessageSubscription.instance_id == instance_id))


def _in_session(uow, model, key):
    return uow.session.identity_map.get(identity_key(model, key))


# --- tasks ---------------------------------------------------------------------------------------------------


def _project_tasks(uow, instance, definition, open_tasks: list[engine.OpenTask], open_ids: list[str]) -> None:
    # The in-memory status check matters: the task this command just completed is still "open" in the
    # database but not in the session, and must not be taken for a task the engine withdrew.
    existing = []
    for task_id in open_ids:
        held = _in_session(uow, Task, task_id)
        if held is None or held.status == "open":
            existing.append(task_id)
    current = {t.id for t in open_tasks}
    for task_id in existing:
        if task_id not in current:
            task = uow.session.get(Task, task_id)
            if task is not None and task.status == "open":
                _cancel_task(uow, task)
    known = set(existing)
    for task in open_tasks:
        if task.id not in known:
            _create_task(uow, instance, definition, task)


def _cancel_task(uow, task: Task) -> None:
    task.status = "cancelled"
    task.completed_at = uow.clock.now()
    record(uow, task.instance_id, "task.cancelled", None, element_id=task.element_id, element_name=task.name,
           task_id=task.id)
    uow.publish(events.TaskCancelled(task.id, task.instance_id, task.element_id))


def _create_task(uow, instance, definition, open_task: engine.OpenTask) -> Task:
    """The task row; the database writes its candidate rows from it in the same INSERT (migration 0015)."""
    now = uow.clock.now()
    declared = definitions.model_of(definition).get("user_tasks", {}).get(open_task.element_id, {})
    assignment = _resolve_or_reject(open_task, declared, now)
    if assignment["due_at"] is None:
        assignment["due_at"] = _default_due(definition, now)
    task = Task(id=open_task.id, instance_id=instance.id, process_key=instance.process_key,
                business_key=instance.business_key, element_id=open_task.element_id,
                name=open_task.name or open_task.element_id, status="open", created_at=now,
                claimed_at=now if assignment["assignee"] else None, **assignment)
    _null_unset_columns(task)
    uow.add(task)
    _keep_in_session(uow, task)
    record(uow, instance.id, "task.created", None, element_id=task.element_id, element_name=task.name,
           task_id=task.id, data=_assignment_summary(task))
    uow.publish(events.TaskCreated(task.id, instance.id, instance.process_key, task.element_id, task.name,
                                   task.assignee, tuple(task.candidate_groups), tuple(task.candidate_users),
                                   declared.get("properties", {})))
    return task


def _default_due(definition: ProcessDefinition, now: datetime) -> datetime | None:
    """The process's `bpm.defaultDue` (validated at deploy) for a task that names no due date of its own."""
    default_due = definitions.process_properties(definition).get(definitions.DEFAULT_DUE)
    return now + engine.parse_duration(default_due, now) if default_due else None


def _keep_in_session(uow, row) -> None:
    """The session holds flushed rows weakly: keep new tasks alive until the transaction ends, so the
    TaskCreated handlers find them in the session instead of reading each one back with a SELECT."""
    uow.session.info.setdefault("created_rows", []).append(row)


def _null_unset_columns(row) -> None:
    """Give every column without a value an explicit NULL: the new row is then fully loaded after the INSERT,
    and handlers reading e.g. `task.owner` do not load the unset columns back with another SELECT."""
    for column in row.__table__.columns:
        if column.key not in row.__dict__ and column.default is None and column.server_default is None:
            setattr(row, column.key, None)


def _assignment_summary(task: Task) -> dict[str, Any]:
    summary = {"assignee": task.assignee, "candidate_groups": task.candidate_groups,
               "candidate_users": task.candidate_users}
    if task.due_at:
        summary["due_at"] = task.due_at.isoformat()
    return {k: v for k, v in summary.items() if v}


def _resolve_or_reject(open_task: engine.OpenTask, declared: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An assignment expression that cannot be evaluated (an unknown variable ...) is a 422 naming the task."""
    try:
        return resolve_assignment(open_task, declared, now)
    except (expressions.ExpressionError, ValueError, TypeError) as error:
        raise ValidationFailed(f"the assignment of user task '{open_task.element_id}' cannot be resolved: {error}",
                               {"element_id": [open_task.element_id]}, element_id=open_task.element_id) from error


def resolve_assignment(open_task: engine.OpenTask, declared: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Assignee, candidates, due date and priority from the BPMN attributes, evaluated on the task's data.

    A lane's name stands in for the candidate group when the task names no assignee and no candidates.
    """
    ext, data = open_task.extensions, open_task.data
    assignee = engine.resolve_value(ext.get("assignee"), data) or None
    groups = engine.resolve_list(ext.get("candidateGroups"), data)
    users = engine.resolve_list(ext.get("candidateUsers"), data)
    if not assignee and not groups and not users and open_task.lane:
        groups = [open_task.lane]
    priority = engine.resolve_value(ext.get("priority"), data)
    return {
        "assignee": str(assignee) if assignee else None,
        "candidate_groups": groups,
        "candidate_users": users,
        "due_at": engine.resolve_due(ext.get("dueDate"), data, now),
        "priority": int(priority) if priority not in (None, "") else DEFAULT_PRIORITY,
        "form_key": ext.get("formKey") or declared.get("formKey"),
    }


# --- timers --------------------------------------------------------------------------------------------------


def _project_timers(uow, instance, timers: list[engine.WaitingTimer], existing: dict[str, tuple[int, Any]]) -> None:
    current = {t.task_id: t for t in timers}
    for task_id, (row_id, due_at) in existing.items():
        held = _in_session(uow, Timer, row_id)
        if held is not None:
            due_at = held.due_at
        if task_id not in current:
            row = held or uow.session.get(Timer, row_id)
            if row is not None:
                uow.session.delete(row)  # the branch moved on or was cancelled: the timer must not fire
        elif due_at != current[task_id].due_at:
            row = held or uow.session.get(Timer, row_id)
            if row is not None:
                row.due_at = current[task_id].due_at  # a cycle moved to its next occurrence
    for task_id, timer in current.items():
        if task_id not in existing:
            uow.session.add(Timer(instance_id=instance.id, task_id=task_id, element_id=timer.element_id,
                                  kind=timer.kind, due_at=timer.due_at, created_at=uow.clock.now()))


# --- decisions -------------------------------------------------------------------------------------------------


def _record_decisions(uow, instance, definition, decisions: list[engine.Decision], actor) -> None:
    by_gateway: dict[str, list[engine.Decision]] = {}
    for decision in decisions:
        by_gateway.setdefault(decision.gateway_id, []).append(decision)
    gateways = definitions.model_of(definition).get("gateways", {})
    for gateway_id, evaluations in by_gateway.items():
        record(uow, instance.id, "gateway.decision", actor, element_id=gateway_id,
               element_name=evaluations[0].gateway_name,
               data=explain_decision(gateways.get(gateway_id, {}), evaluations))


def explain_decision(gateway: dict[str, Any], evaluations: list[engine.Decision]) -> dict[str, Any]:
    """Pair each evaluated condition with its sequence flow and name the flow(s) taken and why."""
    flows = gateway.get("flows", [])
    explained, taken = [], []
    for evaluation in evaluations:
        flow = next((f for f in flows if f.get("condition") == evaluation.expression), {})
        explained.append({"flow_id": flow.get("id"), "flow_name": flow.get("name"), "target": flow.get("target"),
                          "source": flow.get("source"),
                          "expression": evaluation.expression, "values": evaluation.values,
                          "result": evaluation.result})
        if evaluation.result and flow.get("id"):
            taken.append(flow["id"])
    if gateway.get("type") == "exclusiveGateway":
        taken = taken[:1]
    reason = "condition true"
    if not taken and gateway.get("default"):
        taken, reason = [gateway["default"]], "no condition was true: default flow"
    return {"gateway_type": gateway.get("type"), "evaluations": explained, "taken": taken, "reason": reason}
