"""The initiator's view: the instances a user started ("my requests"), newest first, with their current steps.

Anyone may list the instances they started themselves; no role is needed for that. The page query walks the
index on (started_by, started_at, id) and is keyset-paginated: `after` is the id of the last instance of the
previous page. `expand` adds, for one page of instances, what the initiator needs to urge or withdraw: the
process name, the open steps and who holds them, whether a step is overdue and whether the instance was
withdrawn — a fixed number of queries per page, whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from bpm.adapters.orm import HistoryEntry, ProcessDefinition, ProcessInstance, Task
from bpm.adapters.orm_approvals import TaskSigner
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain.errors import ValidationFailed
from bpm.domain.model import Actor
from bpm.services.instances import with_filters

INSTANCE_COLUMNS = ("id", "process_key", "definition_id", "business_key", "status", "started_by", "started_at",
                    "ended_at", "incident")


@dataclass
class MyInstancesQuery:
    status: str | None = None
    process_key: str | None = None
    business_key: str | None = None
    limit: int = 50
    after: str | None = None


def list_my_instances(uow: UnitOfWork, actor: Actor, query: MyInstancesQuery) -> list[ProcessInstance]:
    """One page of the instances `actor` started, newest first (started_at, then id, descending)."""
    with uow:
        mine = ProcessInstance.started_by == actor.username
        statement = with_filters(select(ProcessInstance).where(mine), query)
        if query.after:
            last = uow.session.scalar(select(ProcessInstance.id).where(ProcessInstance.id == query.after, mine))
            if last is None:
                raise ValidationFailed("invalid page position",
                                       {"after": ["not the id of an instance in this list"]})
            started = (select(ProcessInstance.started_at).where(ProcessInstance.id == query.after)
                       .scalar_subquery())
            statement = statement.where(or_(ProcessInstance.started_at < started,
                                            and_(ProcessInstance.started_at == started,
                                                 ProcessInstance.id < query.after)))
        statement = statement.order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc())
        return list(uow.session.scalars(statement.limit(query.limit)))


def expand(uow: UnitOfWork, instances: list[ProcessInstance]) -> list[dict[str, Any]]:
    """The instances as dicts with process_name, open_tasks (holders, overdue), overdue and outcome."""
    if not instances:
        return []
    ids = [instance.id for instance in instances]
    with uow:
        now = utc(uow.clock.now())
        names = dict(uow.session.execute(select(ProcessDefinition.id, ProcessDefinition.name).where(
            ProcessDefinition.id.in_({instance.definition_id for instance in instances}))).all())
        tasks = list(uow.session.scalars(select(Task).where(Task.instance_id.in_(ids), Task.status == "open")
                                         .order_by(Task.created_at, Task.id)))
        signers: dict[str, list[str]] = {}
        if tasks:
            for task_id, username in uow.session.execute(
                    select(TaskSigner.task_id, TaskSigner.username).where(
                        TaskSigner.task_id.in_([task.id for task in tasks]), TaskSigner.status == "pending")
                    .order_by(TaskSigner.id)):
                signers.setdefault(task_id, []).append(username)
        ended = [instance.id for instance in instances if instance.status == "cancelled"]
        withdrawn = set(uow.session.scalars(select(HistoryEntry.instance_id).where(
            HistoryEntry.instance_id.in_(ended), HistoryEntry.event == "instance.withdrawn"))) if ended else set()
    steps: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        steps.setdefault(task.instance_id, []).append(_step(task, signers.get(task.id, []), now))
    rows = []
    for instance in instances:
        open_steps = steps.get(instance.id, [])
        rows.append({**{column: getattr(instance, column) for column in INSTANCE_COLUMNS},
                     "process_name": names.get(instance.definition_id) or instance.process_key,
                     "open_tasks": open_steps, "overdue": any(step["overdue"] for step in open_steps),
                     "outcome": "withdrawn" if instance.id in withdrawn else instance.status})
    return rows


def _step(task: Task, pending_signers: list[str], now) -> dict[str, Any]:
    due = utc(task.due_at)
    return {"id": task.id, "name": task.name, "element_id": task.element_id, "assignee": task.assignee,
            "owner": task.owner, "candidate_users": list(task.candidate_users or []),
            "candidate_groups": list(task.candidate_groups or []), "signers": pending_signers,
            "due_at": due, "overdue": due is not None and due < now, "last_urged_at": utc(task.last_urged_at)}
