"""Escalation policies on user tasks (camunda:properties bpm.*): each step fires at its time and not a second
before, is recorded in history and published as an event; completing the task cancels what is left."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import START, bpmn_fixture, deploy
from sqlalchemy import select, update
from timehelpers import SECOND, deploy_fixture, escalate, history, instance, move_to, open_tasks, start

from bpm.adapters.orm import Task, User
from bpm.adapters.orm_timers import TaskDeadline
from bpm.clock import utc
from bpm.domain import events
from bpm.services import handlers

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def published():
    """Escalation events as the delivery side receives them."""
    seen: list = []

    def capture(event, _uow):
        seen.append(event)

    kinds = (events.TaskReminder, events.TaskOverdue, events.TaskEscalated)
    for kind in kinds:
        handlers.HANDLERS[kind].append(capture)
    yield seen
    for kind in kinds:
        handlers.HANDLERS[kind].remove(capture)


def set_supervisor(context, username: str, supervisor: str) -> None:
    with context.uow() as uow:
        uow.session.execute(update(User).where(User.username == username).values(supervisor=supervisor))
        uow.commit()


def task_row(context, instance_id: str) -> Task:
    with context.uow() as uow:
        return uow.session.scalars(select(Task).where(Task.instance_id == instance_id)
                                   .order_by(Task.created_at)).first()


def deadlines(context, instance_id: str) -> list[tuple[str, str]]:
    with context.uow() as uow:
        rows = uow.session.scalars(select(TaskDeadline).where(TaskDeadline.instance_id == instance_id)
                                   .order_by(TaskDeadline.id))
        return [(d.kind, d.status) for d in rows]


def test_remind_before_then_overdue_to_supervisor_group_and_user_repeated(client, users, context, published):
    set_supervisor(context, "alice", "bob")
    deploy_fixture(client, users, "escalation_notify")  # due PT4H, remind PT1H before, overdue every PT2H
    instance_id = start(client, users, "escalation_notify")
    assert utc(task_row(context, instance_id).due_at) == START + 4 * HOUR

    move_to(context, 3 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 3 * HOUR)
    assert escalate(context) == 1
    [reminded] = history(context, instance_id, "task.reminded")
    assert reminded.data["recipients"] == ["user:alice"] and reminded.actor == "system"
    assert [(type(e).__name__, e.notify_users) for e in published] == [("TaskReminder", ("alice",))]

    move_to(context, 4 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 4 * HOUR)
    assert escalate(context) == 1
    [overdue] = history(context, instance_id, "task.overdue")
    assert overdue.data["recipients"] == ["user:bob", "group:directors", "user:carol"]
    last = published[-1]
    assert isinstance(last, events.TaskOverdue) and last.kind == "overdue"
    assert last.notify == ("user:bob", "group:directors", "user:carol")
    assert last.notify_users == ("bob", "carol") and last.notify_groups == ("directors",)

    move_to(context, 6 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 6 * HOUR)
    assert escalate(context) == 1  # bpm.overdueRepeat
    assert len(history(context, instance_id, "task.overdue")) == 2

    task = task_row(context, instance_id)
    done = client.post(f"/api/v1/tasks/{task.id}/complete", headers=users["alice"], json={"variables": {}})
    assert done.status_code == 200, done.json
    assert deadlines(context, instance_id) == [("remind", "done"), ("overdue", "cancelled")]
    move_to(context, 30 * DAY)
    assert escalate(context) == 0
    assert len(history(context, instance_id, "task.overdue")) == 2


def test_a_repeat_missed_while_down_is_sent_once_and_stays_on_its_grid(client, users, context):
    deploy_fixture(client, users, "escalation_notify")
    instance_id = start(client, users, "escalation_notify")
    move_to(context, 4 * HOUR)
    assert escalate(context) == 2  # reminder (late) and the first overdue notice
    move_to(context, 11 * HOUR)  # 6h, 8h and 10h were missed
    assert escalate(context) == 1
    with context.uow() as uow:
        overdue = uow.session.scalar(select(TaskDeadline).where(TaskDeadline.instance_id == instance_id,
                                                                TaskDeadline.kind == "overdue"))
    assert utc(overdue.due_at) == START + 12 * HOUR


def test_default_due_from_the_process_and_reassign_to_a_group_at_due(client, users, context, published):
    set_supervisor(context, "alice", "carol")
    set_supervisor(context, "bob", "dora")
    deploy_fixture(client, users, "escalation_reassign")  # bpm.defaultDue P1D; reassign group:directors
    instance_id = start(client, users, "escalation_reassign")
    task = task_row(context, instance_id)
    assert utc(task.due_at) == START + DAY
    assert [t["id"] for t in client.get("/api/v1/tasks", headers=users["alice"]).json["items"]] == [task.id]

    move_to(context, DAY - SECOND)
    assert escalate(context) == 0
    move_to(context, DAY)
    assert escalate(context) == 2
    [overdue] = history(context, instance_id, "task.overdue")
    assert overdue.data["recipients"] == ["user:carol", "user:dora"]  # supervisors of each candidate user
    [moved] = history(context, instance_id, "task.reassigned")
    assert moved.data["to"] == "group:directors"
    assert moved.data["from"]["candidate_users"] == ["alice", "bob"]
    assert client.get("/api/v1/tasks", headers=users["alice"]).json["items"] == []
    [visible] = client.get("/api/v1/tasks", headers=users["carol"]).json["items"]
    assert visible["id"] == task.id and visible["candidate_groups"] == ["directors"]
    assert any(isinstance(e, events.TaskEscalated) and e.kind == "reassigned" for e in published)


def test_timeout_auto_rejects_through_the_normal_completion(client, users, context, published):
    deploy_fixture(client, users, "escalation_timeout")  # due P2D, reject PT12H after due
    instance_id = start(client, users, "escalation_timeout")
    move_to(context, 2 * DAY + 12 * HOUR - SECOND)
    assert escalate(context) == 0
    assert open_tasks(context, instance_id) == ["approve"]
    move_to(context, 2 * DAY + 12 * HOUR)
    assert escalate(context) == 1
    assert open_tasks(context, instance_id) == []
    assert instance(context, instance_id).status == "completed"
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["ivan"]).json
    assert detail["variables"]["approved"] is False and detail["variables"]["outcome"] == "rejected"
    assert detail["variables"]["auto_completed"] is True
    assert detail["path"][-1] == "no"
    completed = history(context, instance_id, "task.completed")
    assert [h.actor for h in completed] == ["system"]
    [auto] = history(context, instance_id, "task.auto_completed")
    assert auto.data["action"] == "reject" and auto.data["recipients"] == ["group:finance"]
    assert [e.kind for e in published] == ["auto_completed"]


def test_completing_before_the_timeout_cancels_it(client, users, context):
    deploy_fixture(client, users, "escalation_timeout")
    instance_id = start(client, users, "escalation_timeout")
    [task] = client.get("/api/v1/tasks", headers=users["bob"]).json["items"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=users["bob"],
                       json={"variables": {"approved": True}})
    assert done.status_code == 200, done.json
    assert deadlines(context, instance_id) == [("timeout", "cancelled")]
    move_to(context, 10 * DAY)
    assert escalate(context) == 0
    assert history(context, instance_id, "task.auto_completed") == []


def test_cancelled_instance_cancels_the_escalations(client, users, context):
    deploy_fixture(client, users, "escalation_notify")
    instance_id = start(client, users, "escalation_notify")
    assert client.post(f"/api/v1/process-instances/{instance_id}/cancel", headers=users["ivan"],
                       json={}).status_code == 200
    assert deadlines(context, instance_id) == [("remind", "cancelled"), ("overdue", "cancelled")]
    move_to(context, 10 * DAY)
    assert escalate(context) == 0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("bpm.remindBefore", "soon", "not an ISO 8601 duration"),
    ("bpm.overdueNotify", "supervisor,boss", "'boss' is not supervisor"),
])
def test_deploy_rejects_a_broken_policy_naming_the_task(client, users, name, value, message):
    xml = bpmn_fixture("escalation_notify.bpmn").decode()
    original = {"bpm.remindBefore": "PT1H", "bpm.overdueNotify": "supervisor,group:directors,user:carol"}[name]
    broken = xml.replace(f'name="{name}" value="{original}"', f'name="{name}" value="{value}"')
    assert broken != xml
    response = deploy(client, users["dora"], broken.encode())
    assert response.status_code == 422, response.json
    assert "approve" in response.json["detail"] and message in response.json["detail"]
