"""Approval operations on human tasks: approve/reject, countersign, 加签/减签, 委派, 转办, 退回, 撤回, 催办.

Every operation is one transaction: it checks who may act and in which state, changes the task projection
and (when the step is decided) moves the workflow, and records a history row with actor, time and reason.
The BPMN routes on the variables set here: `approved`, `outcome`, `opinion` and the trail `approvals`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from bpm import engine, json_text
from bpm.adapters import loaded_rows
from bpm.adapters.orm import HistoryEntry, ProcessDefinition, ProcessInstance, Task, User
from bpm.adapters.orm_approvals import ApprovalRecord, TaskSigner
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import (
    DomainError,
    InvalidTransition,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
)
from bpm.domain.model import Actor, may_work_task
from bpm.services import approval_notify as notify
from bpm.services import definitions, escalation
from bpm.services.instances import _run, _scripts_allowed, get_instance
from bpm.services.projection import apply_snapshot, archived_chunks, record
from bpm.services.tasks import (
    CompleteTask,
    _check_form,
    _mark_completed,
    _open_task,
    completion_loaded,
    completion_query,
)

APPROVED, REJECTED = "approved", "rejected"
COUNTERSIGN_MODES = ("all", "any", "sequential", "vote")
POSITIONS = ("before", "after", "parallel")
URGE_INTERVAL = timedelta(minutes=10)


# --- commands -------------------------------------------------------------------------------------


@dataclass
class Decide:
    """Approve or reject a task (the caller may be its assignee or a pending signer)."""

    task_id: str
    actor: Actor
    outcome: str
    opinion: str | None = None
    reason: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


def decide(cmd: Decide, uow: UnitOfWork) -> Task:
    """The task, its instance and definition come in one round trip with whether any signer is pending and the
    instance's approval trail (tasks.completion_query with `_trail_column`); without pending signers, which is the
    common case, no signer query runs."""
    with uow:
        row = loaded_rows.first_row(uow.session, completion_query(_trail_column(uow.session.bind.dialect.name)),
                                    {"task_id": cmd.task_id})
        task, _instance, _definition, signers_pending, existing = completion_loaded(uow, cmd.task_id, row)
        signer = _active_signer_row(uow, task, cmd.actor.username) if signers_pending else None
        if signer is not None:
            _signer_decides(uow, task, signer, cmd)
        else:
            _assignee_decides(uow, task, cmd, signers_pending, existing, _trail_rows(row.approval_trail))
        uow.commit()
        return task


def _assignee_decides(uow, task: Task, cmd: Decide, signers_pending: bool, existing,
                      trail: list[tuple] | None) -> None:
    """`trail`: the instance's approval records as read with the task (`_trail_rows`; none is written before
    `_finish` uses them), or None to read them there."""
    _check_may_decide(uow, task, cmd.actor, signers_pending)
    if task.assignee is None:
        task.assignee, task.claimed_at = cmd.actor.username, uow.clock.now()
    if cmd.outcome == REJECTED:
        _finish(uow, task, cmd.actor.username, REJECTED, cmd, role="assignee", signers_pending=signers_pending,
                existing=existing, trail=trail)
        return
    _check_form(task, cmd.variables, uow)
    if signers_pending and _pending_signers(uow, task, ("parallel", "after")):
        _add_record(uow, task, cmd.actor.username, APPROVED, cmd.opinion, "assignee")
        uow.session.add(TaskSigner(task_id=task.id, username=cmd.actor.username, position="owner", status="done",
                                   added_by=cmd.actor.username, outcome=APPROVED, opinion=cmd.opinion,
                                   added_at=uow.clock.now(), acted_at=uow.clock.now()))
        _history(uow, task, "task.approved", cmd.actor.username, opinion=cmd.opinion, waiting_for_signers=True)
        return
    _finish(uow, task, cmd.actor.username, APPROVED, cmd, role="assignee", signers_pending=signers_pending,
            existing=existing, trail=trail)


def _check_may_decide(uow, task: Task, actor: Actor, signers_pending: bool = True) -> None:
    """`signers_pending`: False when the caller knows no signer of the task is pending (no query then)."""
    if task.delegation_state == "pending":
        if actor.username == task.assignee:
            raise InvalidTransition(f"this task was delegated to you by '{task.owner}': resolve it back to them")
        if actor.username == task.owner:
            raise InvalidTransition(f"the task is delegated to '{task.assignee}'; wait until it is resolved")
    if not may_work_task(actor, task.assignee, task.candidate_users, task.candidate_groups):
        raise PermissionDenied(_not_yours(task))
    waiting = _pending_signers(uow, task, ("before",)) if signers_pending else []
    if waiting:
        raise InvalidTransition("signers added before you have not acted yet: "
                                + ", ".join(s.username for s in waiting))


def _signer_decides(uow, task: Task, signer: TaskSigner, cmd: Decide) -> None:
    if not cmd.actor.may("tasks"):
        raise PermissionDenied(f"'{cmd.actor.username}' may not work tasks")
    if signer.position == "after" and not _owner_acted(uow, task):
        raise InvalidTransition(f"you sign after '{task.assignee}', who has not approved yet")
    signer.status, signer.outcome, signer.opinion, signer.acted_at = ("done", cmd.outcome, cmd.opinion,
                                                                      uow.clock.now())
    if cmd.outcome == REJECTED:
        _finish(uow, task, cmd.actor.username, REJECTED, cmd, role="signer")
        return
    _add_record(uow, task, cmd.actor.username, APPROVED, cmd.opinion, "signer")
    _history(uow, task, "task.signed", cmd.actor.username, opinion=cmd.opinion, position=signer.position)
    _complete_when_signed(uow, task, cmd.actor.username)


def _complete_when_signed(uow, task: Task, actor: str) -> None:
    """After a signer acted (or was removed): finish the step once the owner approved and nobody is pending."""
    uow.flush()
    if _owner_acted(uow, task) and not _pending_signers(uow, task, POSITIONS):
        _finish(uow, task, actor, APPROVED, Decide(task.id, Actor(actor, frozenset(), frozenset()), APPROVED),
                role=None)


# --- finishing a step in the engine ---------------------------------------------------------------


def _finish(uow, task: Task, actor: str, outcome: str, cmd: Decide, role: str | None, *,
            signers_pending: bool = True, existing=None, trail: list[tuple] | None = None) -> None:
    """Record the decision, set the routing variables and complete the task in the workflow.

    `signers_pending`: False when no signer of the task is pending, so none is looked up to cancel; `existing`:
    what the projection held before the step, when the load already told (projection.known_existing); `trail`: the
    instance's approval records when the load read them (else they are read here)."""
    added = _add_record(uow, task, actor, outcome, cmd.opinion, role) if role is not None else None
    instance, definition, workflow = load_workflow(uow, task)
    if engine.find_ready_task(workflow, task.id) is None:
        raise InvalidTransition("the task is no longer ready in its instance")
    variables = {**cmd.variables, "approved": outcome == APPROVED, "outcome": outcome, "opinion": cmd.opinion,
                 "approvals": approval_trail(uow, task.instance_id, added, trail)}
    countersign = _countersign_variables(uow, task, definition, workflow, added)
    variables.update(countersign)
    if countersign:
        decided = countersign[engine.COUNTERSIGN_DONE]
        shared = {k: v for k, v in variables.items() if k != engine.COUNTERSIGN_DONE}
        engine.set_multi_instance_data(workflow, task.id, shared if decided else {"approvals": shared["approvals"]})
    with engine.clock_context(uow.clock.now):
        _run(lambda: engine.complete(workflow, task.id, variables))
        snap = engine.snapshot(workflow)
    if signers_pending:
        _cancel_pending_signers(uow, task)
    event = "task.approved" if outcome == APPROVED else "task.rejected"
    _history(uow, task, event, actor, opinion=cmd.opinion, reason=cmd.reason, auto=role == "auto")
    _mark_completed(uow, task, CompleteTask(task.id, Actor(actor, frozenset(), frozenset()), variables))
    apply_snapshot(uow, instance, definition, snap, actor, existing=existing)


def load_workflow(uow, task: Task, whole: bool = False):
    """The task's instance, definition and workflow; `whole`: with the archived history (send-back)."""
    instance = get_instance(uow, task.instance_id)
    definition = uow.session.get(ProcessDefinition, instance.definition_id)
    archive = archived_chunks(uow, instance.id) if whole else None
    workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json, archive)
    return instance, definition, workflow


def _add_record(uow, task: Task, actor: str, outcome: str, opinion: str | None, role: str) -> ApprovalRecord:
    """The decision's record, written when the command flushes or commits: a caller that reads the records back
    in this command passes it along (`approval_trail`, `_countersign_variables`) instead of flushing first."""
    added = ApprovalRecord(instance_id=task.instance_id, task_id=task.id, element_id=task.element_id,
                           step=task.name, actor=actor, outcome=outcome, opinion=opinion, role=role,
                           at=uow.clock.now())
    uow.session.add(added)
    return added


def approval_trail(uow, instance_id: str, added: ApprovalRecord | None = None,
                   rows: list[tuple] | None = None) -> list[dict[str, Any]]:
    """The `approvals` variable: every decision on this instance, oldest first; `added`: this command's own
    decision, which is the newest; `rows`: the records as TRAIL_COLUMNS, when already read (else read here)."""
    if rows is None:
        rows = loaded_rows.all_rows(uow.session, _trail_query(), {"instance_id": instance_id})
    return [_trail_entry(*row[1:]) for row in _with_unwritten(rows, added, TRAIL_COLUMNS)]


TRAIL_COLUMNS = ("id", "element_id", "step", "actor", "outcome", "opinion", "role", "at")


@functools.cache
def _trail_query():
    """Built once, and read as columns, not objects, on the driver (bpm.adapters.loaded_rows): it runs for every
    approve and reject."""
    return (select(*(getattr(ApprovalRecord, column) for column in TRAIL_COLUMNS))
            .where(ApprovalRecord.instance_id == bindparam("instance_id")).order_by(ApprovalRecord.id))


@functools.cache
def _trail_column(dialect: str):
    """The instance's approval records as one JSON text column of the completion's load (TRAIL_COLUMNS per record,
    `at` as the database writes a timestamp in JSON), so an approve reads them in the same round trip as its task;
    NULL or an empty array when there are none. Built once per dialect: PostgreSQL's json_agg orders the records,
    SQLite's json_group_array does not (`_trail_rows` does)."""
    record = ApprovalRecord
    values = [getattr(record, column) for column in TRAIL_COLUMNS]
    if dialect == "postgresql":
        aggregated = cast(func.json_agg(aggregate_order_by(func.json_build_array(*values), record.id)), Text)
    else:
        aggregated = func.json_group_array(func.json_array(*values))
    return (select(aggregated).where(record.instance_id == Task.instance_id).correlate(Task)
            .scalar_subquery().label("approval_trail"))


def _trail_rows(trail_json: str | None) -> list[tuple]:
    """`_trail_column`'s records as the rows `_trail_query` reads: TRAIL_COLUMNS, `at` a datetime, by id."""
    records = sorted(json_text.loads(trail_json), key=lambda values: values[0]) if trail_json else []
    return [(*values[:-1], datetime.fromisoformat(values[-1])) for values in records]


def _trail_entry(step, step_name, actor, outcome, opinion, role, at) -> dict[str, Any]:
    return {"step": step, "step_name": step_name, "actor": actor, "outcome": outcome, "opinion": opinion,
            "role": role, "at": utc(at).isoformat()}


def _with_unwritten(rows, added: ApprovalRecord | None, columns: tuple[str, ...]) -> list[tuple]:
    """Records read back as `columns` (the id first), then this command's own record as the same columns when it
    is not among them: not written yet (see `_add_record`)."""
    rows = list(rows)
    if added is None or (added.id is not None and any(row[0] == added.id for row in rows)):
        return rows
    return [*rows, tuple(getattr(added, column) for column in columns)]


def _history(uow, task: Task, event: str, actor: str, **data) -> None:
    record(uow, task.instance_id, event, actor, element_id=task.element_id, element_name=task.name,
           task_id=task.id, data={k: v for k, v in data.items() if v not in (None, False)})


# --- countersign (会签 / 或签 / 依次 / 票签) --------------------------------------------------------------


def countersign_mode(definition: ProcessDefinition, element_id: str) -> str | None:
    properties = definitions.model_of(definition).get("user_tasks", {}).get(element_id, {}).get("properties", {})
    mode = (properties.get("bpm.countersign") or "").strip().lower()
    return mode if mode in COUNTERSIGN_MODES else None


def _countersign_variables(uow, task, definition, workflow, added: ApprovalRecord | None) -> dict[str, Any]:
    """`added`: this command's own decision, not written yet (see `_add_record`)."""
    mode = countersign_mode(definition, task.element_id)
    group = engine.multi_instance_group(workflow, task.id) if mode else None
    if group is None:
        return {}
    counted = added if added is not None and added.task_id in group.sibling_ids and added.role != "signer" else None
    rows = uow.session.execute(select(ApprovalRecord.id, ApprovalRecord.outcome).where(
        ApprovalRecord.task_id.in_(group.sibling_ids), ApprovalRecord.role != "signer"))
    votes = [outcome for _id, outcome in _with_unwritten(rows, counted, ("id", "outcome"))]
    result = countersign_result(mode, votes, group.total, _properties(definition, task.element_id))
    engine.end_multi_instance_when_decided(workflow, task.id)
    if result is None:
        return {engine.COUNTERSIGN_DONE: False}
    return {engine.COUNTERSIGN_DONE: True, "approved": result == APPROVED, "outcome": result,
            "countersign": {"mode": mode, "approved": votes.count(APPROVED), "rejected": votes.count(REJECTED),
                            "total": group.total}}


def _properties(definition, element_id: str) -> dict[str, str]:
    return definitions.model_of(definition).get("user_tasks", {}).get(element_id, {}).get("properties", {})


def countersign_result(mode: str, votes: list[str], total: int, properties: dict[str, str]) -> str | None:
    """Decided outcome of a countersign given the votes so far, or None while it is still open."""
    approvals, rejections = votes.count(APPROVED), votes.count(REJECTED)
    if mode in ("all", "sequential"):
        return REJECTED if rejections else (APPROVED if approvals >= total else None)
    if mode == "any":
        return APPROVED if approvals else (REJECTED if rejections >= total else None)
    needed = vote_threshold(total, properties)
    if approvals >= needed:
        return APPROVED
    return REJECTED if total - rejections < needed else None


def vote_threshold(total: int, properties: dict[str, str]) -> int:
    if properties.get("bpm.voteCount"):
        return min(total, max(1, int(properties["bpm.voteCount"])))
    percent = float(properties.get("bpm.votePercent") or 50)
    return max(1, math.ceil(total * percent / 100 - 1e-9))


# --- signers (加签 / 减签) ----------------------------------------------------------------------------


@dataclass
class AddSigners:
    task_id: str
    actor: Actor
    users: list[str]
    position: str
    comment: str | None = None


def add_signers(cmd: AddSigners, uow: UnitOfWork) -> list[TaskSigner]:
    if cmd.position not in POSITIONS:
        raise ValidationFailed("unknown position", {"position": [f"use one of {', '.join(POSITIONS)}"]})
    with uow:
        task = _open_task(uow, cmd.task_id)
        _require_assignee(task, cmd.actor, "add signers")
        if _owner_acted(uow, task):
            raise InvalidTransition("you already approved this task; signers can no longer be added")
        taken = {s.username for s in _pending_signers(uow, task, POSITIONS)} | {task.assignee}
        _require_users(uow, cmd.users, "users")
        duplicates = sorted(set(cmd.users) & taken)
        if duplicates:
            raise InvalidTransition(f"already signing this task: {', '.join(duplicates)}")
        now = uow.clock.now()
        added = [TaskSigner(task_id=task.id, username=u, position=cmd.position, status="pending",
                            added_by=cmd.actor.username, added_at=now) for u in dict.fromkeys(cmd.users)]
        uow.session.add_all(added)
        _history(uow, task, "task.signers_added", cmd.actor.username, users=list(dict.fromkeys(cmd.users)),
                 position=cmd.position, comment=cmd.comment)
        notify.users(uow, [s.username for s in added], f"Please sign: {task.name}", cmd.comment, task)
        uow.commit()
        return added


def remove_signer(task_id: str, actor: Actor, username: str, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        pending = {s.username: s for s in _pending_signers(uow, task, POSITIONS)}
        signer = pending.get(username)
        if signer is None:
            raise InvalidTransition(f"'{username}' is not a signer of this task who has yet to act")
        if not (actor.is_admin or actor.username in (task.assignee, signer.added_by)):
            raise PermissionDenied("only the assignee, whoever added the signer, or an admin may remove a signer")
        signer.status, signer.acted_at = "removed", uow.clock.now()
        _history(uow, task, "task.signer_removed", actor.username, username=username)
        _complete_when_signed(uow, task, actor.username)
        uow.commit()
        return task


def list_signers(uow: UnitOfWork, task_id: str) -> list[TaskSigner]:
    return list(uow.session.scalars(select(TaskSigner).where(TaskSigner.task_id == task_id,
                                                             TaskSigner.position != "owner")
                                    .order_by(TaskSigner.id)))


def _pending_signers(uow, task: Task, positions) -> list[TaskSigner]:
    return list(uow.session.scalars(select(TaskSigner).where(
        TaskSigner.task_id == task.id, TaskSigner.status == "pending", TaskSigner.position.in_(positions))))


def _active_signer_row(uow, task: Task, username: str) -> TaskSigner | None:
    return uow.session.scalar(select(TaskSigner).where(
        TaskSigner.task_id == task.id, TaskSigner.username == username, TaskSigner.status == "pending"))


def _owner_acted(uow, task: Task) -> bool:
    return uow.session.scalar(select(TaskSigner.id).where(TaskSigner.task_id == task.id,
                                                          TaskSigner.position == "owner")) is not None


def _cancel_pending_signers(uow, task: Task) -> None:
    for signer in _pending_signers(uow, task, POSITIONS):
        signer.status, signer.acted_at = "cancelled", uow.clock.now()


# --- assignment: assign, delegate (委派), resolve, transfer (转办) ------------------------------------


def assign(task_id: str, actor: Actor, to: str, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        _require_users(uow, [to], "assignee")
        if not (actor.is_admin or _supervises(uow, actor.username, task.assignee)
                or _supervises(uow, actor.username, to)):
            raise PermissionDenied("only an admin or the supervisor of the assignee may assign a task")
        if task.delegation_state == "pending":
            raise InvalidTransition("the task is delegated; it must be resolved first")
        previous = task.assignee
        task.assignee, task.claimed_at = to, uow.clock.now()
        _history(uow, task, "task.assigned", actor.username, previous=previous, assignee=to)
        notify.users(uow, [to], f"Task assigned to you: {task.name}", None, task)
        uow.commit()
        return task


def delegate(task_id: str, actor: Actor, to: str, comment: str | None, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        _require_assignee(task, actor, "delegate")
        if task.delegation_state == "pending":
            raise InvalidTransition(f"the task is already delegated to '{task.assignee}'")
        _require_other_user(uow, actor, to, "to")
        task.owner, task.assignee, task.delegation_state = actor.username, to, "pending"
        _history(uow, task, "task.delegated", actor.username, to=to, comment=comment)
        notify.users(uow, [to], f"Task delegated to you: {task.name}", comment, task)
        uow.commit()
        return task


def resolve(task_id: str, actor: Actor, comment: str | None, variables: dict[str, Any], uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        if task.delegation_state != "pending":
            raise InvalidTransition("the task is not delegated")
        if actor.username != task.assignee:
            raise PermissionDenied(f"only the delegatee '{task.assignee}' may resolve this task")
        if variables:
            _update_task_data(uow, task, variables, actor.username)
        task.assignee, task.delegation_state = task.owner, "resolved"
        _history(uow, task, "task.resolved", actor.username, owner=task.owner, comment=comment,
                 variables=variables or None)
        notify.users(uow, [task.owner], f"Delegated task handed back: {task.name}", comment, task)
        uow.commit()
        return task


def _update_task_data(uow, task: Task, variables: dict[str, Any], actor: str) -> None:
    instance, definition, workflow = load_workflow(uow, task)
    ready = engine.find_ready_task(workflow, task.id)
    if ready is None:
        raise InvalidTransition("the task is no longer ready in its instance")
    ready.data.update(variables)
    apply_snapshot(uow, instance, definition, engine.snapshot(workflow), actor)


def transfer(task_id: str, actor: Actor, to: str, comment: str | None, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        _require_assignee(task, actor, "transfer")
        if task.delegation_state == "pending":
            raise InvalidTransition("a delegated task cannot be transferred; resolve it first")
        _require_other_user(uow, actor, to, "to")
        previous = task.assignee
        task.assignee, task.claimed_at, task.owner, task.delegation_state = to, uow.clock.now(), None, None
        _history(uow, task, "task.transferred", actor.username, previous=previous, to=to, comment=comment)
        notify.users(uow, [to], f"Task transferred to you: {task.name}", comment, task)
        uow.commit()
        return task


def _require_assignee(task: Task, actor: Actor, what: str) -> None:
    if actor.is_admin and task.assignee is not None:
        return
    if not actor.may("tasks") or task.assignee != actor.username:
        raise PermissionDenied(f"only the assignee may {what} this task" +
                               (f" (it is assigned to '{task.assignee}')" if task.assignee else
                                " (claim it first)"))


def _require_users(uow, usernames: list[str], field_name: str) -> None:
    if not usernames:
        raise ValidationFailed("name at least one user", {field_name: ["must not be empty"]})
    known = set(uow.session.scalars(select(User.username).where(User.username.in_(usernames),
                                                                User.active.is_(True))))
    unknown = sorted(set(usernames) - known)
    if unknown:
        raise ValidationFailed(f"unknown user(s): {', '.join(unknown)}", {field_name: [f"unknown: {unknown}"]})


def _require_other_user(uow, actor: Actor, to: str, field_name: str) -> None:
    _require_users(uow, [to], field_name)
    if to == actor.username:
        raise ValidationFailed("you cannot hand a task to yourself", {field_name: ["must be someone else"]})


def _supervises(uow, supervisor: str, username: str | None) -> bool:
    if not username:
        return False
    return uow.session.scalar(select(User.supervisor).where(User.username == username)) == supervisor


def _not_yours(task: Task) -> str:
    if task.assignee:
        return f"the task is assigned to '{task.assignee}'"
    return "you are neither the assignee nor a candidate of this task"


# --- send back (退回) -------------------------------------------------------------------------------


def send_back(task_id: str, actor: Actor, to_element_id: str | None, comment: str | None,
              uow: UnitOfWork) -> Task:
    """Resume the instance at an earlier completed step; the steps after it run again."""
    with uow:
        task = _open_task(uow, task_id)
        _check_may_decide(uow, task, actor)
        instance, definition, workflow = load_workflow(uow, task, whole=True)
        if engine.find_ready_task(workflow, task.id) is None:
            raise InvalidTransition("the task is no longer ready in its instance")
        steps = [e for _, e in engine.completed_user_steps(workflow)]
        target = to_element_id or _previous_step(steps, task.element_id)
        if target not in steps:
            raise InvalidTransition(f"cannot send back to '{target}': it is not a completed step of this instance"
                                    if target else "there is no earlier step to send this task back to")
        with engine.clock_context(uow.clock.now):
            _run(lambda: _reset(workflow, target))
            snap = engine.snapshot(workflow)
        reopened = _reopen_rows(uow, snap, actor.username)
        _history(uow, task, "task.sent_back", actor.username, to=target, comment=comment)
        apply_snapshot(uow, instance, definition, snap, actor.username)
        task.completed_by = actor.username
        notify.users(uow, [t.assignee for t in reopened if t.assignee], f"Sent back to you: {task.name}",
                     comment, task)
        uow.commit()
        return task


def _reset(workflow, element_id: str) -> None:
    engine.send_back(workflow, element_id)


def _previous_step(steps: list[str], current: str) -> str | None:
    earlier = [s for s in steps if s != current]
    return earlier[-1] if earlier else None


def _reopen_rows(uow, snap: engine.Snapshot, actor: str) -> list[Task]:
    """A step sent back keeps its engine id: reopen its projection row (for its last assignee) instead of a new one."""
    reopened = []
    for open_task in snap.open_tasks:
        row = uow.session.get(Task, open_task.id)
        if row is not None and row.status != "open":
            row.status, row.completed_at, row.completed_by = "open", None, None
            row.assignee, row.claimed_at = row.assignee, uow.clock.now()
            row.owner, row.delegation_state, row.created_at = None, None, uow.clock.now()
            record(uow, row.instance_id, "task.reopened", actor, element_id=row.element_id,
                   element_name=row.name, task_id=row.id)
            escalation.replan_reopened(uow, row, open_task)  # a new due date and its escalation steps
            reopened.append(row)
    uow.flush()
    return reopened


# --- withdraw (撤回) --------------------------------------------------------------------------------


def withdraw(instance_id: str, actor: Actor, reason: str | None, uow: UnitOfWork) -> ProcessInstance:
    with uow:
        instance = get_instance(uow, instance_id)
        if instance.started_by != actor.username:
            raise PermissionDenied("only the initiator may withdraw an instance")
        if instance.status != "running":
            raise InvalidTransition(f"the instance is already {instance.status}")
        if _acted_on_since_initiator(uow, instance):
            raise InvalidTransition("the next step has already been acted on; the instance can no longer be "
                                    "withdrawn")
        definition = uow.session.get(ProcessDefinition, instance.definition_id)
        workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
        engine.cancel(workflow)
        instance.status, instance.ended_at = "cancelled", uow.clock.now()
        apply_snapshot(uow, instance, definition, engine.snapshot(workflow), actor.username)
        record(uow, instance.id, "instance.withdrawn", actor.username, data={"reason": reason})
        uow.publish(events.InstanceCancelled(instance.id, instance.process_key, instance.business_key,
                                             actor.username, reason))
        uow.commit()
        return instance


ACTIONS = ("instance.started", "task.completed", "task.delegated", "task.transferred", "task.signed",
           "task.approved", "task.rejected", "task.sent_back")


def _acted_on_since_initiator(uow, instance: ProcessInstance) -> bool:
    rows = uow.session.execute(select(HistoryEntry.actor, HistoryEntry.event).where(
        HistoryEntry.instance_id == instance.id, HistoryEntry.event.in_(ACTIONS)).order_by(HistoryEntry.id))
    acted = False
    for who, _event in rows:
        acted = who not in (instance.started_by, None)
    return acted


# --- urge (催办) ------------------------------------------------------------------------------------


def urge(task_id: str, actor: Actor, comment: str | None, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        instance = get_instance(uow, task.instance_id)
        if not (actor.is_admin or instance.started_by == actor.username
                or _supervises(uow, actor.username, task.assignee)):
            raise PermissionDenied("only the initiator, the assignee's supervisor or an admin may urge")
        now = uow.clock.now()
        if task.last_urged_at is not None and utc(task.last_urged_at) + URGE_INTERVAL > now:
            wait = math.ceil((utc(task.last_urged_at) + URGE_INTERVAL - now).total_seconds())
            raise RateLimited(f"this task was urged less than {int(URGE_INTERVAL.total_seconds() // 60)} minutes "
                              f"ago; try again in {wait} s", retry_after=wait)
        task.last_urged_at = now
        recipients = _current_workers(uow, task)
        _history(uow, task, "task.urged", actor.username, comment=comment, recipients=recipients)
        notify.users(uow, recipients, f"Reminder: {task.name} is waiting for you", comment, task)
        uow.commit()
        return task


def _current_workers(uow, task: Task) -> list[str]:
    signers = [s.username for s in _pending_signers(uow, task, POSITIONS)]
    if task.assignee:
        return [task.assignee, *signers]
    members = set(task.candidate_users)
    if task.candidate_groups:
        from bpm.adapters.orm import Group, UserGroup

        members |= set(uow.session.scalars(select(User.username).join(UserGroup, UserGroup.user_id == User.id)
                                           .join(Group, Group.id == UserGroup.group_id)
                                           .where(Group.name.in_(task.candidate_groups))))
    return sorted(members) + signers


# --- bulk approve ---------------------------------------------------------------------------------


def bulk_approve(task_ids: list[str], actor: Actor, opinion: str | None, uow: UnitOfWork) -> list[dict]:
    """Approve each task in its own transaction; one failure does not stop the others."""
    results = []
    for task_id in dict.fromkeys(task_ids):
        try:
            decide(Decide(task_id, actor, APPROVED, opinion), uow)
            results.append({"task_id": task_id, "ok": True, "status": 200})
        except DomainError as error:
            results.append({"task_id": task_id, "ok": False, "error": error.code, "detail": error.detail})
    return results


# --- who may see a task through this module -------------------------------------------------------


def is_signer(uow, task_id: str, username: str) -> bool:
    return uow.session.scalar(select(TaskSigner.id).where(TaskSigner.task_id == task_id,
                                                          TaskSigner.username == username)) is not None


# --- what the caller may do now (the web inbox shows exactly these buttons) ------------------------------------


def available_actions(uow: UnitOfWork, actor: Actor, task: Task) -> list[str]:
    if task.status != "open":
        return ["comment"]
    actions = ["comment", "attach"]
    signer = _active_signer_row(uow, task, actor.username)
    owner_acted = _owner_acted(uow, task)
    if signer is not None and actor.may("tasks") and (signer.position != "after" or owner_acted):
        actions += ["approve", "reject"]
    elif task.delegation_state == "pending":
        actions += ["resolve"] if actor.username == task.assignee else []
    elif may_work_task(actor, task.assignee, task.candidate_users, task.candidate_groups) and not owner_acted:
        if not _pending_signers(uow, task, ("before",)):
            actions += ["approve", "reject", "send-back"]
        if task.assignee is None:
            actions.append("claim")
        elif task.assignee == actor.username:
            actions += ["unclaim", "delegate", "transfer", "add-signer"]
    if (task.assignee == actor.username or actor.is_admin) and _pending_signers(uow, task, POSITIONS):
        actions.append("remove-signer")
    if actor.is_admin or _supervises(uow, actor.username, task.assignee):
        actions.append("assign")
    instance = get_instance(uow, task.instance_id)
    if actor.is_admin or instance.started_by == actor.username or _supervises(uow, actor.username, task.assignee):
        actions.append("urge")
    return actions


def actions_for(task_id: str, actor: Actor, uow: UnitOfWork) -> list[str]:
    with uow:
        return available_actions(uow, actor, uow.session.get(Task, task_id))
