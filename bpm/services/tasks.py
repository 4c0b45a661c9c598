"""Working human tasks: read, claim, unclaim, complete, and the inbox query."""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, true, union_all, update

from bpm import engine, forms
from bpm.adapters import loaded_rows
from bpm.adapters.orm import TASK_STATUSES, ProcessDefinition, ProcessInstance, Task, TaskCandidate, task_status_is
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor, is_candidate, may_work_task
from bpm.services import definitions, form_store, projection, webhooks
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
            or may_read_instance(uow, actor, get_instance(uow, task.instance_id))
            or _seen_through_approvals(uow, actor, task))


def _seen_through_approvals(uow: UnitOfWork, actor: Actor, task: Task) -> bool:
    from bpm.services.collaboration import seen_through_approvals

    return seen_through_approvals(uow, actor, task)


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
        return {"task": task, "data": data, "form": form_store.resolve(task.form_key, uow)}


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
        task, instance, definition, signers_pending, existing = load_for_completion(uow, cmd.task_id)
        if not may_work_task(cmd.actor, task.assignee, task.candidate_users, task.candidate_groups):
            raise PermissionDenied(_why_not(cmd.actor, task))
        _check_approval_state(uow, task, signers_pending)
        _check_form(task, cmd.variables, uow)
        workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
        if engine.find_ready_task(workflow, task.id) is None:
            raise InvalidTransition("the task is no longer ready in its instance")
        with engine.clock_context(uow.clock.now):
            _run(lambda: engine.complete(workflow, task.id, cmd.variables))
            snap = engine.snapshot(workflow)
        _mark_completed(uow, task, cmd)
        apply_snapshot(uow, instance, definition, snap, cmd.actor.username, existing=existing)
        uow.commit()
        return task


def load_for_completion(uow, task_id: str):
    """The open task, its instance and definition, whether signers are still pending, and what the projection
    holds for the instance when that is only this task (else None): one round trip instead of six, read as a Core
    row (bpm.adapters.loaded_rows; rows this session already holds are returned as they are, like `session.get`).
    The same row says whether any webhook subscription is active, so the events of the completion need not
    look."""
    return completion_loaded(uow, task_id, loaded_rows.first_row(uow.session, completion_query(), {"task_id": task_id}))


def completion_loaded(uow, task_id: str, row):
    """What `load_for_completion` returns, from the row `completion_query` read (None: no such task), whatever
    further columns the row has after the query's own."""
    if row is None:
        raise NotFound(f"task '{task_id}' not found")
    webhooks.note_any_active(uow, row.webhooks_active)
    task, instance, definition = loaded_rows.objects(uow.session, row, *_COMPLETION_ROWS)
    if task.status != "open":
        raise InvalidTransition(f"the task is {task.status}", task_status=task.status)
    return task, instance, definition, bool(row.signers_pending), projection.known_existing(row, task.id)


_TASK_ROW = loaded_rows.loaded(Task)
_COMPLETION_ROWS = (_TASK_ROW, loaded_rows.loaded(ProcessInstance), definitions.DEFINITION_WITHOUT_TEXTS)


@functools.cache
def completion_query(*also):
    """Built once per tuple of further columns `also` (building a statement costs as much CPU as sending it); the
    task id is a bound parameter. A command that needs more of the instance in the same round trip passes its
    columns, built once too, so each gets one statement (approvals.decide: the approval trail)."""
    from bpm.adapters.orm_approvals import TaskSigner

    pending = exists().where(TaskSigner.task_id == Task.id, TaskSigner.status == "pending")
    return (select(*loaded_rows.columns(*_COMPLETION_ROWS), pending.label("signers_pending"),
                   webhooks.any_active_column(), *projection.existing_summary_columns(Task), *also)
            .select_from(Task)
            .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
            .where(Task.id == bindparam("task_id")))


def _check_approval_state(uow, task: Task, signers_pending: bool | None = None) -> None:
    """A delegated task goes back to its owner first; a task with signers still to act is finished by approve.

    `signers_pending` is the answer already read with the task (None: look it up here)."""
    if task.delegation_state == "pending":
        raise InvalidTransition(f"the task is delegated by '{task.owner}'; the delegatee resolves it, "
                                "then the owner completes it")
    if signers_pending is None:
        from bpm.adapters.orm_approvals import TaskSigner

        signers_pending = uow.session.scalar(select(TaskSigner.id).where(
            TaskSigner.task_id == task.id, TaskSigner.status == "pending")) is not None
    if signers_pending:
        raise InvalidTransition("signers of this task have not acted yet; use approve or reject")


def _why_not(actor: Actor, task: Task) -> str:
    if task.assignee and task.assignee != actor.username:
        return f"the task is assigned to '{task.assignee}'"
    return "you are neither the assignee nor a candidate of this task"


def _check_form(task: Task, variables: dict[str, Any], uow: UnitOfWork) -> None:
    form = form_store.resolve(task.form_key, uow)
    if not form:
        return
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


# --- inbox ----------------------------------------------------------------------------------------

SORTS = {"due": ("due_at", "asc"), "priority": ("priority", "desc"), "created": ("created_at", "desc")}
SCOPES = ("all", "mine", "claimable", "groups", "delegated", "cc", "signing", "completed")
STATUSES = (*TASK_STATUSES, "any")  # the inbox's status filter


@dataclass
class TaskQuery:
    """An inbox page. scope: all (mine + my groups) | mine | claimable/groups (unclaimed, via my groups or name)
    | delegated (delegated to me) | cc (copied to me) | signing (I am an added signer) | completed (by me)."""

    scope: str = "all"
    status: str = "open"
    process_key: str | None = None
    business_key: str | None = None
    due_before: datetime | None = None
    sort: str = "due"
    limit: int = 50
    cursor: str | None = None
    overdue: bool = False
    priority: int | None = None  # minimum priority
    q: str | None = None  # text search on task name and business key


def list_tasks(uow: UnitOfWork, actor: Actor, query: TaskQuery) -> tuple[list[Task], str | None]:
    """One page of the caller's inbox, keyset-paginated on (sort key, id); its rows read with bpm.adapters
    .loaded_rows, past the ORM's loading."""
    if query.sort not in SORTS:
        raise ValidationFailed("unknown sort", {"sort": [f"use one of {', '.join(SORTS)}"]})
    if query.scope not in SCOPES:
        raise ValidationFailed("unknown scope", {"scope": [f"use one of {', '.join(SCOPES)}"]})
    with uow:
        statement, values = _inbox_query(actor, query, uow.clock.now())
        rows = [loaded_rows.objects(uow.session, row, _TASK_ROW)[0]
                for row in loaded_rows.all_rows(uow.session, statement, values)]
        next_cursor = _cursor_for(rows[query.limit - 1], SORTS[query.sort][0]) if len(rows) > query.limit else None
        return rows[:query.limit], next_cursor


def inbox_statement(actor: Actor, query: TaskQuery, now: datetime):
    """The page query with its values bound in (what list_tasks runs; for EXPLAIN and the inbox benchmark)."""
    statement, values = _inbox_query(actor, query, now)
    return statement.params(values)


def _inbox_query(actor: Actor, query: TaskQuery, now: datetime):
    """The page query (limit + 1 rows, to know whether another page follows) and its parameter values.

    The default inbox (open tasks, mine + claimable through my groups) is built once per shape (sort, filters
    given, cursor, page size, number of groups) with every value a bound parameter: building it costs more CPU
    than the database takes to answer it. Other scopes are built per request."""
    values = {**_actor_values(actor), **_filter_values(query, now)}
    cursor = _cursor_values(query) if query.cursor else None
    values.update(cursor or {})
    shape = (query.sort, tuple(name for name in FILTERS if name in values), _cursor_shape(cursor), query.limit + 1)
    if query.status != "open" or query.scope not in MERGED_SCOPES:
        return _other_scope_statement(actor, query, shape), values
    if "business_key" in values:
        return _one_case_statement(*shape, query.scope == "all"), values
    return _default_inbox_statement(*shape, len(actor.groups), query.scope == "all"), values


# Scopes whose open tasks are read source by source and merged (`_default_inbox_statement`): "all" is mine and
# claimable, "claimable" and "groups" are claimable alone.
MERGED_SCOPES = ("all", "claimable", "groups")


def _other_scope_statement(actor: Actor, query: TaskQuery, shape):
    return _page(*shape, *_visibility(actor, query))


def _page(sort: str, filters: tuple[str, ...], cursor: str | None, limit: int, *visible):
    """One page of the tasks that meet `visible` and the filters given, after the cursor, in sort order."""
    conditions = _filters(filters) + ([_after_cursor(sort, cursor)] if cursor else [])
    return _task_rows().where(*visible, *conditions).order_by(*_order(sort)).limit(limit)


def _task_rows():
    """A SELECT of whole task rows, read with loaded_rows."""
    return select(*loaded_rows.columns(_TASK_ROW))


@functools.lru_cache(maxsize=512)
def _default_inbox_statement(sort: str, filters: tuple[str, ...], cursor: str | None, limit: int, groups: int,
                             with_mine: bool = True):
    """Mine (unless `with_mine` is false) and claimable read each source on its own, in index order and
    limited, then merge the short lists: one OR over both would make the database sort every task the user can
    see before returning the first page. Sorted by due date, each candidate key (my name, each of my groups)
    walks the candidates' own due-date index; an EXISTS per open task would walk every open task in due order
    until a page of mine turned up."""
    filtered = _filters(filters)
    conditions = filtered + ([_after_cursor(sort, cursor)] if cursor else [])
    order = _order(sort)
    firsts = ([select(Task.id).where(task_status_is("open"), _mine(), *conditions).order_by(*order).limit(limit)]
              if with_mine else [])
    if sort == "due":
        firsts += [_claimable_by_due(index, filtered, cursor, limit) for index in range(groups + 1)]
    else:
        firsts.append(select(Task.id).where(task_status_is("open"), _claimable(), *conditions)
                      .order_by(*order).limit(limit))
    merged = union_all(*(select(first.subquery().c.id) for first in firsts))
    return _task_rows().where(Task.id.in_(merged)).order_by(*order).limit(limit)


@functools.lru_cache(maxsize=128)
def _one_case_statement(sort: str, filters: tuple[str, ...], cursor: str | None, limit: int, with_mine: bool):
    """The inbox filtered by a business key (how an integrator finds a case's task): the case's few open tasks
    come off the business key's index (migration 0011), then those that are mine or claimable by me are kept.
    The merged walks of `_default_inbox_statement` would each walk my own inbox in due order to find them."""
    return _page(sort, filters, cursor, limit, task_status_is("open"),
                 or_(_mine(), _claimable()) if with_mine else _claimable())


def _actor_values(actor: Actor) -> dict[str, Any]:
    """The caller's name and groups, for the bound parameters of _mine, _claimable and the candidate keys."""
    groups = sorted(actor.groups)
    return {"username": actor.username, "groups": groups or [""], "candidate_0": actor.username,
            **{f"candidate_{index}": group for index, group in enumerate(groups, start=1)}}


def _claimable_by_due(index: int, filters: list, cursor: str | None, limit: int):
    """Open unclaimed tasks of one candidate key (0: my name, then my groups in name order), walked in due order
    on the candidates' own index."""
    statement = (select(TaskCandidate.task_id.label("id")).join(Task, Task.id == TaskCandidate.task_id)
                 .where(TaskCandidate.is_open == true(), TaskCandidate.kind == ("u" if index == 0 else "g"),
                        TaskCandidate.name == bindparam(f"candidate_{index}"),
                        task_status_is("open"), Task.assignee.is_(None), *filters))
    if cursor:
        statement = statement.where(_after_cursor("due", cursor, TaskCandidate.due_at, TaskCandidate.task_id))
    return statement.order_by(TaskCandidate.due_at.asc().nulls_last(), TaskCandidate.task_id.asc()).limit(limit)


def _mine():
    return Task.assignee == bindparam("username")


def _claimable():
    """Unclaimed, with an open candidate row of mine. An open row already means an open, unassigned task (migration
    0015); the test on the row matters for the plan: closed rows are every task my groups were ever offered, and a
    planner that tests tasks against a hash of my rows then hashes only the open ones."""
    return and_(Task.assignee.is_(None), exists().where(TaskCandidate.task_id == Task.id,
                                                        TaskCandidate.is_open == true(), _names_me(TaskCandidate)))


def _names_me(model):
    """Rows of `model` (candidates, CC) naming the caller or one of their groups (the values of _actor_values)."""
    return or_(and_(model.kind == "u", model.name == bindparam("username")),
               and_(model.kind == "g", model.name.in_(bindparam("groups", expanding=True))))


def count_tasks(uow: UnitOfWork, actor: Actor) -> dict[str, int]:
    """Badge numbers: open tasks per inbox filter (the lengths of the lists `list_tasks` gives per scope, and of
    its `overdue` list), in one statement."""
    with uow:
        values = {**_actor_values(actor), "now": uow.clock.now()}
        counts = loaded_rows.first_row(uow.session, _counts_statement(), values)._mapping
    # "all" is mine or claimable, and the two never overlap: claimable tasks have no assignee
    return {"all": counts["mine"] + counts["groups"], "mine": counts["mine"], "groups": counts["groups"],
            "delegated": counts["delegated"], "cc": counts["cc"], "signing": counts["signing"],
            "overdue": counts["mine_overdue"] + counts["groups_overdue"]}


@functools.cache
def _counts_statement():
    """Each count starts from the caller's own index entries (their assigned open tasks, their candidate keys'
    open rows, their CC and signer rows) and reads each of them once, the overdue and delegated counts being
    FILTERs of the same pass; none reads the open tasks of others (an OR of "mine" and "claimable", or an
    EXISTS per open task, would read every open task in the table). The claimable count reads no task at all,
    only the open candidate rows' index: an open candidate row is an open, unassigned task with the task's due
    date (migration 0015). Built once."""
    from bpm.adapters.orm_approvals import TaskCc, TaskSigner

    overdue = Task.due_at < bindparam("now")
    mine = (select(func.count().label("mine"),
                   func.count().filter(Task.delegation_state == "pending").label("delegated"),
                   func.count().filter(overdue).label("mine_overdue"))
            .where(task_status_is("open"), _mine()).subquery())
    offered = _open_rows_naming_me().subquery("offered")
    claimable_id = offered.c.task_id.distinct()  # a task can be mine through my name and several groups
    claimable = select(func.count(claimable_id).label("groups"),
                       func.count(claimable_id).filter(offered.c.due_at < bindparam("now")).label("groups_overdue")
                       ).subquery()
    cc = (select(func.count(TaskCc.task_id.distinct())).join(Task, Task.id == TaskCc.task_id)
          .where(_names_me(TaskCc), task_status_is("open")))
    signing = (select(func.count(TaskSigner.task_id.distinct())).join(Task, Task.id == TaskSigner.task_id)
               .where(TaskSigner.username == bindparam("username"), TaskSigner.status == "pending",
                      task_status_is("open")))
    return select(mine.c.mine, mine.c.delegated, mine.c.mine_overdue, claimable.c.groups,
                  claimable.c.groups_overdue, cc.scalar_subquery().label("cc"),
                  signing.scalar_subquery().label("signing")).select_from(mine.join(claimable, true()))


def _open_rows_naming_me():
    """My open candidate rows (task id, due date): the name and the groups as two branches, each an index-only scan
    of the open rows' index (an OR of the two makes PostgreSQL visit the table row of every entry)."""
    rows = select(TaskCandidate.task_id, TaskCandidate.due_at).where(TaskCandidate.is_open == true())
    return union_all(rows.where(TaskCandidate.kind == "u", TaskCandidate.name == bindparam("username")),
                     rows.where(TaskCandidate.kind == "g",
                                TaskCandidate.name.in_(bindparam("groups", expanding=True))))


def _visibility(actor: Actor, query: TaskQuery) -> list:
    """Which tasks a scope shows the caller; _mine and _claimable take the values of _actor_values."""
    if query.scope == "completed":
        return [task_status_is("completed"), Task.completed_by == actor.username]
    mine, claimable = _mine(), _claimable()
    who = {"mine": mine, "claimable": claimable, "groups": claimable,
           "delegated": and_(mine, Task.delegation_state == "pending"),
           "cc": _cc_to(), "signing": _signing(actor)}.get(query.scope, or_(mine, claimable))
    status = [] if query.status == "any" else [task_status_is(query.status)]
    return [*status, who]


def _cc_to():
    from bpm.adapters.orm_approvals import TaskCc

    return exists().where(TaskCc.task_id == Task.id, _names_me(TaskCc))


def _signing(actor: Actor):
    from bpm.adapters.orm_approvals import TaskSigner

    return exists().where(TaskSigner.task_id == Task.id, TaskSigner.username == actor.username,
                          TaskSigner.status == "pending")


# The inbox filters, by the name of their bound parameter (values: _filter_values).
_FILTER_CONDITIONS = {
    "process_key": Task.process_key == bindparam("process_key"),
    "business_key": Task.business_key == bindparam("business_key"),
    "due_before": Task.due_at < bindparam("due_before"),
    "overdue_at": Task.due_at < bindparam("overdue_at"),
    "min_priority": Task.priority >= bindparam("min_priority"),
    "pattern": or_(Task.name.ilike(bindparam("pattern"), escape="\\"),
                   Task.business_key.ilike(bindparam("pattern"), escape="\\")),
}
FILTERS = tuple(_FILTER_CONDITIONS)


def _filter_values(query: TaskQuery, now: datetime) -> dict[str, Any]:
    """The filters the query gives, by the name of their bound parameter."""
    values = {"process_key": query.process_key, "business_key": query.business_key, "due_before": query.due_before,
              "overdue_at": now if query.overdue else None, "min_priority": query.priority,
              "pattern": _like_pattern(query.q) if query.q else None}
    return {name: value for name, value in values.items() if value is not None and value != ""}


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filters(names: tuple[str, ...]) -> list:
    return [_FILTER_CONDITIONS[name] for name in names]


def _order(sort: str) -> tuple:
    # Due dates ascend with undated tasks last (PostgreSQL's default for ASC, so its index order matches).
    if sort == "due":
        return Task.due_at.asc().nulls_last(), Task.id.asc()
    column = getattr(Task, SORTS[sort][0])
    return column.desc(), Task.id.desc()


def _cursor_for(task: Task, column: str) -> str:
    value = getattr(task, column)
    if isinstance(value, datetime):
        value = utc(value).isoformat()
    payload = json.dumps({"v": value, "id": task.id})
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _cursor_values(query: TaskQuery) -> dict[str, Any]:
    """The last row of the previous page, from the cursor the client sends back."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(query.cursor.encode()))
        value, last_id = payload["v"], payload["id"]
        if query.sort in ("due", "created") and value is not None:
            value = datetime.fromisoformat(value)
        if not isinstance(last_id, str):
            raise TypeError("id")
    except (ValueError, KeyError, TypeError) as error:
        raise ValidationFailed("invalid cursor", {"cursor": ["not a cursor returned by this API"]}) from error
    return {"after_value": value, "after_id": last_id}


def _cursor_shape(cursor: dict[str, Any] | None) -> str | None:
    """None (first page), "null" (the previous page ended on an undated task) or "value"."""
    if cursor is None:
        return None
    return "null" if cursor["after_value"] is None else "value"


def _after_cursor(sort: str, cursor: str, due_column=None, id_column=None):
    """Rows after the previous page's last one, in the page's order (bound: after_value, after_id)."""
    value, last_id = bindparam("after_value"), bindparam("after_id")
    if sort == "due":
        due, key = (due_column if due_column is not None else Task.due_at), (id_column or Task.id)
        if cursor == "null":
            return and_(due.is_(None), key > last_id)
        return or_(due > value, and_(due == value, key > last_id), due.is_(None))
    column = getattr(Task, SORTS[sort][0])
    return or_(column < value, and_(column == value, Task.id < last_id))
