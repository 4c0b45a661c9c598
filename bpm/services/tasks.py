"""Working human tasks: read, claim, unclaim, complete, and the inbox query."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update

from bpm import engine
from bpm.adapters.orm import ProcessDefinition, Task, TaskCandidate
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor, is_candidate, may_work_task
from bpm.services import definitions
from bpm.services.instances import _run, _scripts_allowed, get_instance, may_read_instance
from bpm.services.projection import apply_snapshot, record


def get_task(uow: UnitOfWork, task_id: str) -> Task:
    task = uow.session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task '{task_id}' not found")
    return task


def may_see_task(uow: UnitOfWork, actor: Actor, task: Task) -> bool:
    return (may_work_task(actor, task.assignee, task.candidate_users, task.candidate_groups)
            or task.completed_by == actor.username
            or may_read_instance(uow, actor, get_instance(uow, task.instance_id)))


def describe_task(uow: UnitOfWork, actor: Actor, task_id: str) -> dict[str, Any]:
    """The task with its current data (from the workflow) and its form, for a client to render."""
    with uow:
        task = get_task(uow, task_id)
        if not may_see_task(uow, actor, task):
            raise PermissionDenied("you may not see this task")
        data: dict[str, Any] = {}
        if task.status == "open":
            instance = get_instance(uow, task.instance_id)
            definition = uow.session.get(ProcessDefinition, instance.definition_id)
            workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
            ready = engine.find_ready_task(workflow, task.id)
            data = dict(ready.data) if ready is not None else {}
        return {"task": task, "data": data, "form": load_form(task.form_key)}


def load_form(form_key: str | None) -> dict | None:
    """Forms are resolved by the forms module when present (form-js schemas in forms/)."""
    if not form_key:
        return None
    try:
        from bpm import forms
    except ImportError:
        return None
    return forms.find(form_key)


# --- claim / unclaim -------------------------------------------------------------------------------------------


def claim_task(task_id: str, actor: Actor, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        if task.assignee == actor.username:
            return task
        if task.assignee is not None:
            raise InvalidTransition(f"the task is already claimed by '{task.assignee}'", assignee=task.assignee)
        if not (actor.is_admin or (actor.may("tasks") and is_candidate(actor, task.candidate_users,
                                                                         task.candidate_groups))):
            raise PermissionDenied("you are not a candidate for this task")
        _set_assignee_if_unclaimed(uow, task, actor.username)
        record(uow, task.instance_id, "task.claimed", actor.username, element_id=task.element_id,
               element_name=task.name, task_id=task.id)
        uow.commit()
        return task


def _set_assignee_if_unclaimed(uow, task: Task, username: str) -> None:
    # Conditional update: two concurrent claims cannot both win (the loser sees 0 rows).
    result = uow.session.execute(
        update(Task).where(Task.id == task.id, Task.status == "open", Task.assignee.is_(None))
        .values(assignee=username, claimed_at=uow.clock.now()).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise InvalidTransition("the task was claimed by someone else a moment ago")
    uow.session.refresh(task)


def unclaim_task(task_id: str, actor: Actor, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, task_id)
        if task.assignee is None:
            raise InvalidTransition("the task is not claimed")
        if task.assignee != actor.username and not actor.is_admin:
            raise PermissionDenied(f"only '{task.assignee}' or an admin may unclaim this task")
        task.assignee, task.claimed_at = None, None
        record(uow, task.instance_id, "task.unclaimed", actor.username, element_id=task.element_id,
               element_name=task.name, task_id=task.id)
        uow.commit()
        return task


def _open_task(uow, task_id: str) -> Task:
    task = get_task(uow, task_id)
    if task.status != "open":
        raise InvalidTransition(f"the task is {task.status}", task_status=task.status)
    return task


# --- complete --------------------------------------------------------------------------------------------------


@dataclass
class CompleteTask:
    task_id: str
    actor: Actor
    variables: dict[str, Any] = field(default_factory=dict)


def complete_task(cmd: CompleteTask, uow: UnitOfWork) -> Task:
    with uow:
        task = _open_task(uow, cmd.task_id)
        if not may_work_task(cmd.actor, task.assignee, task.candidate_users, task.candidate_groups):
            raise PermissionDenied(_why_not(cmd.actor, task))
        _check_form(task, cmd.variables)
        instance = get_instance(uow, task.instance_id)
        definition = uow.session.get(ProcessDefinition, instance.definition_id)
        workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
        if engine.find_ready_task(workflow, task.id) is None:
            raise InvalidTransition("the task is no longer ready in its instance")
        with engine.clock_context(uow.clock.now):
            _run(lambda: engine.complete(workflow, task.id, cmd.variables))
            snap = engine.snapshot(workflow)
        _mark_completed(uow, task, cmd)
        apply_snapshot(uow, instance, definition, snap, cmd.actor.username)
        uow.commit()
        return task


def _why_not(actor: Actor, task: Task) -> str:
    if task.assignee and task.assignee != actor.username:
        return f"the task is assigned to '{task.assignee}'"
    return "you are neither the assignee nor a candidate of this task"


def _check_form(task: Task, variables: dict[str, Any]) -> None:
    form = load_form(task.form_key)
    if not form:
        return
    from bpm import forms

    errors = forms.validate(form, variables)
    if errors:
        raise ValidationFailed("the form data is invalid", errors)


def _mark_completed(uow, task: Task, cmd: CompleteTask) -> None:
    now = uow.clock.now()
    task.status, task.completed_at, task.completed_by = "completed", now, cmd.actor.username
    if task.assignee is None:
        task.assignee, task.claimed_at = cmd.actor.username, now
    record(uow, task.instance_id, "task.completed", cmd.actor.username, element_id=task.element_id,
           element_name=task.name, task_id=task.id, data={"variables": cmd.variables})
    uow.publish(events.TaskCompleted(task.id, task.instance_id, task.process_key, task.element_id,
                                     cmd.actor.username))


# --- inbox ---------------------------------------------------------------------------------------------------------

SORTS = {"due": ("due_at", "asc"), "priority": ("priority", "desc"), "created": ("created_at", "desc")}
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass
class TaskQuery:
    scope: str = "all"  # all (mine + claimable) | mine | claimable | completed
    status: str = "open"
    process_key: str | None = None
    business_key: str | None = None
    due_before: datetime | None = None
    sort: str = "due"
    limit: int = 50
    cursor: str | None = None


def list_tasks(uow: UnitOfWork, actor: Actor, query: TaskQuery) -> tuple[list[Task], str | None]:
    """One page of the caller's inbox, keyset-paginated on (sort key, id)."""
    with uow:
        sort_column, sort_value = _sort_expression(query.sort)
        statement = select(Task).where(*_visibility(actor, query), *_filters(query))
        if query.cursor:
            statement = statement.where(_after_cursor(query, sort_value, query.cursor))
        direction = SORTS[query.sort][1]
        order = (sort_value.asc(), Task.id.asc()) if direction == "asc" else (sort_value.desc(), Task.id.desc())
        rows = list(uow.session.scalars(statement.order_by(*order).limit(query.limit + 1)))
        next_cursor = _cursor_for(rows[query.limit - 1], sort_column) if len(rows) > query.limit else None
        return rows[:query.limit], next_cursor


def _visibility(actor: Actor, query: TaskQuery) -> list:
    if query.status == "completed" or query.scope == "completed":
        return [Task.status == "completed", Task.completed_by == actor.username]
    mine = Task.assignee == actor.username
    claimable = and_(Task.assignee.is_(None), exists().where(
        TaskCandidate.task_id == Task.id,
        or_(and_(TaskCandidate.kind == "u", TaskCandidate.name == actor.username),
            and_(TaskCandidate.kind == "g", TaskCandidate.name.in_(sorted(actor.groups) or [""])))))
    who = {"mine": mine, "claimable": claimable}.get(query.scope, or_(mine, claimable))
    return [Task.status == "open", who]


def _filters(query: TaskQuery) -> list:
    conditions = []
    if query.process_key:
        conditions.append(Task.process_key == query.process_key)
    if query.business_key:
        conditions.append(Task.business_key == query.business_key)
    if query.due_before:
        conditions.append(Task.due_at < query.due_before)
    return conditions


def _sort_expression(sort: str):
    if sort not in SORTS:
        raise ValidationFailed("unknown sort", {"sort": [f"use one of {', '.join(SORTS)}"]})
    column = getattr(Task, SORTS[sort][0])
    if sort == "due":
        return "due_at", func.coalesce(Task.due_at, FAR_FUTURE)
    return SORTS[sort][0], column


def _cursor_for(task: Task, column: str) -> str:
    value = getattr(task, column)
    if isinstance(value, datetime):
        value = utc(value).isoformat()
    payload = json.dumps({"v": value, "id": task.id})
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _after_cursor(query: TaskQuery, sort_value, cursor: str):
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        value, last_id = payload["v"], payload["id"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValidationFailed("invalid cursor", {"cursor": ["not a cursor returned by this API"]}) from error
    if query.sort in ("due", "created"):
        value = datetime.fromisoformat(value) if value else FAR_FUTURE
    if SORTS[query.sort][1] == "asc":
        return or_(sort_value > value, and_(sort_value == value, Task.id > last_id))
    return or_(sort_value < value, and_(sort_value == value, Task.id < last_id))
