"""Task SLAs and escalation policies, declared on a user task with camunda:properties (docs/escalation.md).

When a task is created its policy becomes rows in `task_deadlines` (remind, overdue, reassign, timeout), in
the same transaction; completing or cancelling the task cancels them. `run_due_escalations` fires the due
rows the way timers fire: each row in its own transaction, claimed with FOR UPDATE SKIP LOCKED, failures
become incidents. Every step writes a history row and publishes an event (TaskReminder, TaskOverdue,
TaskEscalated) from which notifications are made.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select

from bpm import engine
from bpm.adapters import hot_rows
from bpm.adapters.orm import ProcessDefinition, ProcessInstance, Task, User
from bpm.adapters.orm_timers import TaskDeadline
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import (
    DeploymentRejected,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)
from bpm.domain.model import Actor
from bpm.services import definitions, incidents
from bpm.services.handlers import handles
from bpm.services.projection import record

UowFactory = Callable[[], UnitOfWork]

DEFAULT_DUE = definitions.DEFAULT_DUE  # the process default, applied when a task is created (projection)
REMIND_BEFORE = "bpm.remindBefore"
OVERDUE_NOTIFY = "bpm.overdueNotify"
OVERDUE_REPEAT = "bpm.overdueRepeat"
OVERDUE_REASSIGN = "bpm.overdueReassign"
TIMEOUT_ACTION = "bpm.timeoutAction"
TIMEOUT_AFTER = "bpm.timeoutAfter"
DURATIONS = (REMIND_BEFORE, OVERDUE_REPEAT, TIMEOUT_AFTER)
TIMEOUT_OUTCOMES = {"approve": (True, "approved"), "reject": (False, "rejected"),
                    "complete": (None, "completed")}
SYSTEM_ACTOR = Actor("system", frozenset({"admin"}), frozenset())
FIRED = "fired"
SKIPPED, FAILED = incidents.SKIPPED, incidents.FAILED


# --- the policy: read and checked at deploy ---


def policy_problems(element_id: str, properties: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """What is wrong with a task's bpm.* properties (empty when the policy is valid)."""
    problems = []

    def problem(name: str, message: str) -> None:
        problems.append({"code": "escalation-policy", "element_id": element_id, "element_type": "userTask",
                         "message": f"camunda:property {name}='{properties.get(name)}': {message}"})

    for name in DURATIONS:
        if properties.get(name):
            try:
                engine.parse_duration(properties[name], now)
            except ValueError as error:
                problem(name, str(error))
    if properties.get(OVERDUE_NOTIFY):
        for target in _split(properties[OVERDUE_NOTIFY]):
            if target != "supervisor" and not _is_target(target):
                problem(OVERDUE_NOTIFY, f"'{target}' is not supervisor, group:<name> or user:<name>")
    if properties.get(OVERDUE_REASSIGN) and not _is_target(properties[OVERDUE_REASSIGN].strip()):
        problem(OVERDUE_REASSIGN, "use group:<name> or user:<name>")
    if properties.get(TIMEOUT_ACTION) and properties[TIMEOUT_ACTION].strip() not in TIMEOUT_OUTCOMES:
        problem(TIMEOUT_ACTION, f"use one of {', '.join(TIMEOUT_OUTCOMES)}")
    return problems


def _split(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _is_target(target: str) -> bool:
    kind, _, name = target.partition(":")
    return kind in ("group", "user") and bool(name.strip())


def check_policies(uow: UnitOfWork, rows: list[ProcessDefinition], _command=None) -> None:
    """Deploy hook: refuse an upload whose escalation properties cannot work, naming the element."""
    now = uow.clock.now()
    problems = []
    for definition in rows:
        for element_id, task in definitions.model_of(definition).get("user_tasks", {}).items():
            problems += policy_problems(element_id, task.get("properties") or {}, now)
        default_due = definitions.process_properties(definition).get(DEFAULT_DUE)
        if default_due:
            try:
                engine.parse_duration(default_due, now)
            except ValueError as error:
                problems.append({"code": "escalation-policy", "element_id": definition.key,
                                 "element_type": "process",
                                 "message": f"camunda:property {DEFAULT_DUE}='{default_due}': {error}"})
    if problems:
        first = problems[0]
        raise DeploymentRejected(f"{first['message']} ({first['element_type']} '{first['element_id']}')",
                                 problems)


definitions.DEPLOY_HOOKS.append(check_policies)


# --- planning the deadlines of a new task ---


@handles(events.TaskCreated)
def plan_escalations(event: events.TaskCreated, uow: UnitOfWork) -> None:
    task = uow.row_in_session(Task, event.task_id)
    if task is None:
        return
    created = utc(task.created_at)
    policy = {k: v for k, v in (event.properties or {}).items() if k.startswith("bpm.") and v}
    if task.due_at is None or not policy:
        return
    for kind, due_at, repeat in _deadlines(policy, utc(task.due_at)):
        uow.session.add(TaskDeadline(task_id=task.id, instance_id=task.instance_id, kind=kind, due_at=due_at,
                                     status="waiting", repeat=repeat, fired_count=0, policy=policy,
                                     created_at=created))


def _deadlines(policy: dict[str, str], due: datetime) -> list[tuple[str, datetime, str | None]]:
    planned: list[tuple[str, datetime, str | None]] = []
    if policy.get(REMIND_BEFORE):
        planned.append(("remind", due - engine.parse_duration(policy[REMIND_BEFORE], due), None))
    if policy.get(OVERDUE_NOTIFY) or policy.get(OVERDUE_REPEAT):
        planned.append(("overdue", due, policy.get(OVERDUE_REPEAT)))
    if policy.get(OVERDUE_REASSIGN):
        planned.append(("reassign", due, None))
    if policy.get(TIMEOUT_ACTION):
        after = policy.get(TIMEOUT_AFTER) or "PT0S"
        planned.append(("timeout", due + engine.parse_duration(after, due), None))
    return planned


# --- a due date that changes: the deadlines follow it ---


def change_due_date(uow: UnitOfWork, task: Task, due_at: datetime | None, actor: str | None, reason: str,
                    comment: str | None = None) -> None:
    """Move the task's due date and re-plan its escalation in the caller's transaction: the waiting steps are
    deleted and the task's policy is planned again from the new date (none when the date is removed).

    A step planned again for a time already past runs on the next scheduler pass, unless the old due date
    already ran that step: a reminder that was sent is not sent again for a date moved into the past.
    Reassignments, delegations, transfers and substitutes do not move the due date: the planned steps address
    whoever works the task when they run."""
    now = uow.clock.now()
    before = utc(task.due_at) if task.due_at else None
    task.due_at = utc(due_at) if due_at else None
    rows = list(uow.session.scalars(select(TaskDeadline).where(TaskDeadline.task_id == task.id)))
    ran = {row.kind for row in rows if row.fired_count}
    for row in rows:
        if row.status == "waiting":
            incidents.resolve_job(uow, "escalation", str(row.id), "re-planned: the due date changed", actor)
            uow.session.delete(row)
    policy = _policy_of(uow, task)
    planned = []
    if task.due_at is not None and policy:
        for kind, step_due, repeat in _deadlines(policy, task.due_at):
            if step_due <= now and kind in ran:
                continue
            uow.session.add(TaskDeadline(task_id=task.id, instance_id=task.instance_id, kind=kind, due_at=step_due,
                                         status="waiting", repeat=repeat, fired_count=0, policy=policy,
                                         created_at=now))
            planned.append({"kind": kind, "due_at": step_due.isoformat()})
    record(uow, task.instance_id, "task.due_changed", actor, element_id=task.element_id, element_name=task.name,
           task_id=task.id, data={"from": before.isoformat() if before else None,
                                  "to": task.due_at.isoformat() if task.due_at else None, "reason": reason,
                                  "comment": comment, "planned": planned})
    uow.publish(events.TaskDueChanged(task.id, task.instance_id, task.process_key, task.element_id, task.name,
                                      task.assignee, task.due_at, before, actor, reason, now, task.business_key))


def _policy_of(uow: UnitOfWork, task: Task) -> dict[str, str]:
    """The task's bpm.* properties, from its deployed definition."""
    instance = uow.session.get(ProcessInstance, task.instance_id)
    definition = uow.session.get(ProcessDefinition, instance.definition_id) if instance else None
    declared = (definitions.model_of(definition).get("user_tasks", {}).get(task.element_id, {}) if definition else {})
    return {k: v for k, v in (declared.get("properties") or {}).items() if k.startswith("bpm.") and v}


def set_due_date(task_id: str, actor: Actor, due_at: datetime | None, comment: str | None,
                 uow: UnitOfWork) -> Task:
    """PUT /tasks/{id}/due-date: an admin, or the supervisor of the assignee, sets or removes an open task's
    due date; the escalation steps are planned again from it in the same transaction."""
    with uow:
        query = select(Task).where(Task.id == task_id)
        if uow.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # a step running on this task finishes first
        task = uow.session.scalar(query)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if not (actor.is_admin or _supervises(uow, actor.username, task.assignee)):
            raise PermissionDenied("only an admin or the supervisor of the assignee may change a due date")
        if task.status != "open":
            raise InvalidTransition(f"the task is {task.status}; only an open task has a due date to change")
        change_due_date(uow, task, due_at, actor.username, "changed", comment)
        uow.commit()
        return task


def deadlines_of(task_id: str, uow: UnitOfWork) -> list[TaskDeadline]:
    with uow:
        return list(uow.session.scalars(select(TaskDeadline).where(TaskDeadline.task_id == task_id)
                                        .order_by(TaskDeadline.id)))


def _supervises(uow: UnitOfWork, supervisor: str, username: str | None) -> bool:
    if not username:
        return False
    return uow.session.scalar(select(User.supervisor).where(User.username == username)) == supervisor


def replan_reopened(uow: UnitOfWork, task: Task, open_task: engine.OpenTask) -> None:
    """A step sent back runs again: its due date is computed again from now (a duration counts from the
    reopening) and its escalation is planned again."""
    from bpm.services.projection import resolve_assignment  # late: the projection dispatches to this module

    instance = uow.session.get(ProcessInstance, task.instance_id)
    definition = uow.session.get(ProcessDefinition, instance.definition_id) if instance else None
    if definition is None:
        return
    now = uow.clock.now()
    declared = definitions.model_of(definition).get("user_tasks", {}).get(task.element_id, {})
    try:
        due = resolve_assignment(open_task, declared, now)["due_at"]
    except Exception:  # noqa: BLE001 - the assignment resolved when the task was created; keep its date then
        due = task.due_at
    if due is None:
        default_due = definitions.process_properties(definition).get(DEFAULT_DUE)
        due = now + engine.parse_duration(default_due, now) if default_due else None
    change_due_date(uow, task, due, None, "reopened")


@handles(events.TaskCompleted)
def cancel_on_completion(event: events.TaskCompleted, uow: UnitOfWork) -> None:
    _cancel_deadlines(uow, event.task_id)


@handles(events.TaskCancelled)
def cancel_on_cancellation(event: events.TaskCancelled, uow: UnitOfWork) -> None:
    _cancel_deadlines(uow, event.task_id)


def _cancel_deadlines(uow: UnitOfWork, task_id: str) -> None:
    """Waiting steps exist only while the task has a due date (planned from it, removed with it), so a task this
    transaction holds without one has nothing to cancel; a step that slipped through a race is cancelled by the
    scheduler when it finds the task closed. Nothing reads the UPDATE's result: on PostgreSQL it goes with the
    command's other writes, after them, in their round trip at commit (bpm.adapters.hot_rows.queue_statement).
    A step this command fired itself is no longer waiting, whether it is written before or after; sent after the
    ORM's writes, the UPDATE also cancels the steps of a task this same command opened and closed, which an
    UPDATE sent before them missed. Elsewhere it runs at once, after a flush of the ORM's writes."""
    task = uow.row_in_session(Task, task_id, load=False)
    if task is not None and task.due_at is None:
        return
    values = {"for_task": task_id}
    if not hot_rows.queue_statement(uow.session, _cancel_on_driver(), values):
        uow.flush()  # elsewhere too after the ORM's writes: the same steps cancelled on every database
        uow.session.execute(_cancel_statement(), values)


@functools.cache
def _cancel_statement():
    """Built once: it runs on every completion (building a statement costs about as much CPU as sending it)."""
    table = TaskDeadline.__table__
    return (table.update().where(table.c.task_id == bindparam("for_task"), table.c.status == "waiting")
            .values(status="cancelled"))


@functools.cache
def _cancel_on_driver() -> hot_rows.DriverStatement:
    return hot_rows.compiled(_cancel_statement())


# --- firing due deadlines ---


def run_due_escalations(uow_factory: UowFactory, limit: int = 500) -> int:
    """One scheduler pass: run up to `limit` due escalation steps, each in its own transaction."""
    uow = uow_factory()
    with uow:
        now = uow.clock.now()
        ids = list(uow.session.scalars(
            select(TaskDeadline.id).where(TaskDeadline.status == "waiting", TaskDeadline.due_at <= now,
                                          incidents.not_held_back("escalation", TaskDeadline.id, now))
            .order_by(TaskDeadline.due_at).limit(limit)))
    return sum(1 for deadline_id in ids if run_deadline(uow_factory, deadline_id) == FIRED)


def run_deadline(uow_factory: UowFactory, deadline_id: int) -> str:
    job = incidents.Job("escalation", str(deadline_id))
    status, outcome = incidents.run_job(job, uow_factory(), lambda uow: _run_and_commit(uow, deadline_id, job),
                                        uow_factory)
    return outcome if status == incidents.DONE else status


def _run_and_commit(uow: UnitOfWork, deadline_id: int, job: incidents.Job) -> str:
    outcome = _run_in_transaction(uow, deadline_id, job)
    uow.commit()
    return outcome


def _run_in_transaction(uow: UnitOfWork, deadline_id: int, job: incidents.Job) -> str:
    now = uow.clock.now()
    deadline = uow.session.scalar(select(TaskDeadline).where(
        TaskDeadline.id == deadline_id, TaskDeadline.status == "waiting", TaskDeadline.due_at <= now)
        .with_for_update(skip_locked=True))
    if deadline is None:
        return SKIPPED
    task = uow.session.scalar(select(Task).where(Task.id == deadline.task_id)
                              .with_for_update(skip_locked=True))
    if task is None:
        return SKIPPED
    job.instance_id, job.process_key = task.instance_id, task.process_key
    job.element_id, job.element_name = task.element_id, task.name
    if task.status != "open":
        deadline.status = "cancelled"
        return SKIPPED
    STEPS[deadline.kind](uow, deadline, task, now)
    deadline.fired_count += 1
    deadline.fired_at = now
    _reschedule_or_finish(deadline, now)
    incidents.resolve_job(uow, "escalation", job.id, "the escalation ran")
    return FIRED


def _reschedule_or_finish(deadline: TaskDeadline, now: datetime) -> None:
    if deadline.status != "waiting":
        return
    if deadline.kind == "overdue" and deadline.repeat:
        deadline.due_at = _next_repeat(utc(deadline.due_at), deadline.repeat, now)
    else:
        deadline.status = "done"


def _next_repeat(due: datetime, repeat: str, now: datetime) -> datetime:
    """The next occurrence on the repeat grid after `now` (missed occurrences are coalesced into this one)."""
    step = engine.parse_duration(repeat, due)
    if step <= timedelta(0):
        step = timedelta(minutes=1)
    following = due + step
    if following <= now:
        following += step * ((now - following) // step + 1)
    return following


# --- the steps ---


def _remind(uow: UnitOfWork, deadline: TaskDeadline, task: Task, now: datetime) -> None:
    notify = _workers_of(task)
    _announce(uow, task, deadline, "task.reminded", events.TaskReminder, "reminder", notify, now)


def _overdue(uow: UnitOfWork, deadline: TaskDeadline, task: Task, now: datetime) -> None:
    targets = _split(deadline.policy.get(OVERDUE_NOTIFY, ""))
    notify = _resolve_targets(uow, task, targets) if targets else _workers_of(task)
    _announce(uow, task, deadline, "task.overdue", events.TaskOverdue, "overdue", notify, now,
              extra={"repeat": deadline.fired_count + 1, "targets": targets})


def _reassign(uow: UnitOfWork, deadline: TaskDeadline, task: Task, now: datetime) -> None:
    target = deadline.policy[OVERDUE_REASSIGN].strip()
    kind, _, name = target.partition(":")
    before = {"assignee": task.assignee, "candidate_groups": list(task.candidate_groups),
              "candidate_users": list(task.candidate_users)}
    if kind == "group":
        task.assignee, task.claimed_at = None, None
        task.candidate_groups, task.candidate_users = [name.strip()], []
    else:
        task.assignee, task.claimed_at = name.strip(), now
    _announce(uow, task, deadline, "task.reassigned", events.TaskEscalated, "reassigned", [target], now,
              extra={"from": before, "to": target})


def _timeout(uow: UnitOfWork, deadline: TaskDeadline, task: Task, now: datetime) -> None:
    from bpm.services import tasks  # late: tasks imports the instance services

    action = deadline.policy[TIMEOUT_ACTION].strip()
    approved, outcome = TIMEOUT_OUTCOMES[action]
    variables: dict[str, Any] = {"outcome": outcome, "auto_completed": True}
    if approved is not None:
        variables["approved"] = approved
    notify = _workers_of(task)
    tasks.complete_task(tasks.CompleteTask(task.id, SYSTEM_ACTOR, variables), uow)
    deadline.status = "done"
    _announce(uow, task, deadline, "task.auto_completed", events.TaskEscalated, "auto_completed", notify, now,
              extra={"action": action, "variables": variables})


STEPS: dict[str, Callable[[UnitOfWork, TaskDeadline, Task, datetime], None]] = {
    "remind": _remind, "overdue": _overdue, "reassign": _reassign, "timeout": _timeout}


def _announce(uow: UnitOfWork, task: Task, deadline: TaskDeadline, history_event: str, event_type, kind: str,
              notify: list[str], now: datetime, extra: dict[str, Any] | None = None) -> None:
    notify = list(dict.fromkeys(notify))
    users = tuple(n.split(":", 1)[1] for n in notify if n.startswith("user:"))
    groups = tuple(n.split(":", 1)[1] for n in notify if n.startswith("group:"))
    due = utc(task.due_at)
    record(uow, task.instance_id, history_event, "system", element_id=task.element_id, element_name=task.name,
           task_id=task.id, data={"recipients": notify, "due_at": due.isoformat() if due else None,
                                  "deadline_due_at": utc(deadline.due_at).isoformat(), "at": now.isoformat(),
                                  **(extra or {})})
    uow.publish(event_type(task.id, task.instance_id, task.process_key, task.element_id, task.name,
                           task.assignee, tuple(notify), kind, users, groups, due, task.business_key))


def _workers_of(task: Task) -> list[str]:
    """Who works the task now: the assignee, else its candidate users and groups."""
    if task.assignee:
        return [f"user:{task.assignee}"]
    return [f"user:{u}" for u in task.candidate_users] + [f"group:{g}" for g in task.candidate_groups]


def _resolve_targets(uow: UnitOfWork, task: Task, targets: list[str]) -> list[str]:
    resolved: list[str] = []
    for target in targets:
        if target == "supervisor":
            resolved += [f"user:{s}" for s in _supervisors(uow, task)]
        else:
            kind, _, name = target.partition(":")
            resolved.append(f"{kind}:{name.strip()}")
    return resolved


def _supervisors(uow: UnitOfWork, task: Task) -> list[str]:
    """users.supervisor of the assignee, or of each candidate user when nobody has claimed the task."""
    people = [task.assignee] if task.assignee else list(task.candidate_users)
    if not people:
        return []
    rows = uow.session.execute(select(User.username, User.supervisor).where(User.username.in_(people)))
    found = {username: supervisor for username, supervisor in rows}
    return [found[p] for p in people if found.get(p)]


@incidents.retries("escalation")
def retry_deadline(uow_factory: UowFactory, job_id: str) -> bool:
    outcome = run_deadline(uow_factory, int(job_id))
    if outcome == FIRED:
        return True
    if outcome == FAILED:
        return False
    uow = uow_factory()
    with uow:
        deadline = uow.session.get(TaskDeadline, int(job_id))
        return deadline is None or deadline.status != "waiting"
