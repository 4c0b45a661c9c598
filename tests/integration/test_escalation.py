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


def test_a_default_due_date_reaches_the_inbox_index(client, users, context):
    """The inbox sorts and filters claimable tasks on task_candidates.due_at: the process default must land there."""
    from bpm.adapters.orm import TaskCandidate

    deploy_fixture(client, users, "escalation_reassign")  # bpm.defaultDue P1D, candidate users alice and bob
    instance_id = start(client, users, "escalation_reassign")
    task = task_row(context, instance_id)
    with context.uow() as uow:
        mirrored = {utc(row.due_at) for row in uow.session.scalars(
            select(TaskCandidate).where(TaskCandidate.task_id == task.id))}
    assert mirrored == {START + DAY}
    due_soon = client.get("/api/v1/tasks", headers=users["bob"],
                          query_string={"due_before": (START + DAY + SECOND).isoformat()}).json["items"]
    assert [t["id"] for t in due_soon] == [task.id]
    later = client.get("/api/v1/tasks", headers=users["bob"],
                       query_string={"due_before": (START + DAY - SECOND).isoformat()}).json["items"]
    assert later == []


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


# --- a due date that changes: the escalation steps are planned again from it ---


def waiting_steps(context, instance_id: str) -> list[tuple[str, object]]:
    with context.uow() as uow:
        rows = uow.session.scalars(select(TaskDeadline).where(TaskDeadline.instance_id == instance_id,
                                                              TaskDeadline.status == "waiting")
                                   .order_by(TaskDeadline.due_at, TaskDeadline.kind))
        return [(d.kind, utc(d.due_at)) for d in rows]


def set_due(client, users, who: str, task_id: str, due_at):
    return client.put(f"/api/v1/tasks/{task_id}/due-date", headers=users[who],
                      json={"due_at": due_at.isoformat() if due_at else None, "comment": "customer asked"})


def test_a_later_due_date_replans_the_reminder_and_the_overdue_notice(client, users, context, published):
    deploy_fixture(client, users, "escalation_notify")  # due PT4H, remind PT1H before, overdue every PT2H
    instance_id = start(client, users, "escalation_notify")
    task = task_row(context, instance_id)
    move_to(context, HOUR)
    moved = set_due(client, users, "admin", task.id, START + 8 * HOUR)
    assert moved.status_code == 200, moved.json
    assert moved.json["due_at"] == (START + 8 * HOUR).isoformat()
    assert [(d["kind"], d["status"]) for d in moved.json["deadlines"]] == [("remind", "waiting"),
                                                                            ("overdue", "waiting")]
    assert waiting_steps(context, instance_id) == [("remind", START + 7 * HOUR), ("overdue", START + 8 * HOUR)]
    assert len(deadlines(context, instance_id)) == 2  # the old steps are gone, not kept beside the new ones
    [changed] = history(context, instance_id, "task.due_changed")
    assert changed.actor == "admin" and changed.data["from"] == (START + 4 * HOUR).isoformat()
    assert changed.data["to"] == (START + 8 * HOUR).isoformat() and changed.data["comment"] == "customer asked"
    inbox = client.get("/api/v1/tasks", headers=users["alice"]).json["items"]
    assert [utc_text(t["due_at"]) for t in inbox] == [START + 8 * HOUR]

    move_to(context, 4 * HOUR)  # the old reminder (3 h) and the old overdue (4 h) times pass quietly
    assert escalate(context) == 0
    move_to(context, 7 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 7 * HOUR)
    assert escalate(context) == 1
    assert [type(e).__name__ for e in published] == ["TaskReminder"]
    move_to(context, 8 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 8 * HOUR)
    assert escalate(context) == 1
    move_to(context, 10 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 10 * HOUR)
    assert escalate(context) == 1  # the repetition is on the new grid
    assert [type(e).__name__ for e in published] == ["TaskReminder", "TaskOverdue", "TaskOverdue"]


def utc_text(value: str):
    from datetime import datetime

    return utc(datetime.fromisoformat(value))


def test_an_earlier_due_date_brings_the_steps_forward_and_a_sent_reminder_is_not_repeated(client, users,
                                                                                          context):
    set_supervisor(context, "alice", "bob")
    deploy_fixture(client, users, "escalation_notify")
    instance_id = start(client, users, "escalation_notify")
    task = task_row(context, instance_id)
    move_to(context, 3 * HOUR)
    assert escalate(context) == 1  # the reminder for the 4 h due date
    move_to(context, 3 * HOUR + 30 * 60 * SECOND)
    # the supervisor moves the date to 3h45: its reminder time (2h45) is past and was already sent
    assert set_due(client, users, "bob", task.id, START + 3 * HOUR + 45 * 60 * SECOND).status_code == 200
    assert waiting_steps(context, instance_id) == [("overdue", START + 3 * HOUR + 45 * 60 * SECOND)]
    assert escalate(context) == 0
    move_to(context, 3 * HOUR + 45 * 60 * SECOND - SECOND)
    assert escalate(context) == 0
    move_to(context, 3 * HOUR + 45 * 60 * SECOND)
    assert escalate(context) == 1
    assert len(history(context, instance_id, "task.reminded")) == 1
    assert len(history(context, instance_id, "task.overdue")) == 1
    move_to(context, 4 * HOUR)  # the old overdue time: nothing more
    assert escalate(context) == 0


def test_a_due_date_moved_into_the_past_runs_the_steps_that_never_ran_at_once(client, users, context):
    deploy_fixture(client, users, "escalation_timeout")  # due P2D, reject PT12H after due
    instance_id = start(client, users, "escalation_timeout")
    task = task_row(context, instance_id)
    move_to(context, DAY)
    assert set_due(client, users, "admin", task.id, START + 6 * HOUR).status_code == 200
    assert waiting_steps(context, instance_id) == [("timeout", START + 18 * HOUR)]
    assert escalate(context) == 1
    assert instance(context, instance_id).status == "completed"


def test_removing_the_due_date_removes_the_steps(client, users, context):
    deploy_fixture(client, users, "escalation_notify")
    instance_id = start(client, users, "escalation_notify")
    task = task_row(context, instance_id)
    removed = set_due(client, users, "admin", task.id, None)
    assert removed.status_code == 200 and removed.json["due_at"] is None and removed.json["deadlines"] == []
    move_to(context, 30 * DAY)
    assert escalate(context) == 0
    assert task_row(context, instance_id).due_at is None


def test_only_an_admin_or_the_assignees_supervisor_changes_a_due_date(client, users, context):
    set_supervisor(context, "alice", "bob")
    deploy_fixture(client, users, "escalation_notify")
    instance_id = start(client, users, "escalation_notify")
    task = task_row(context, instance_id)
    for who in ("alice", "carol", "ivan"):
        assert set_due(client, users, who, task.id, START + DAY).status_code == 403
    assert waiting_steps(context, instance_id) == [("remind", START + 3 * HOUR), ("overdue", START + 4 * HOUR)]
    assert set_due(client, users, "bob", task.id, START + DAY).status_code == 200
    assert set_due(client, users, "admin", "no-such-task", START + DAY).status_code == 404
    done = client.post(f"/api/v1/tasks/{task.id}/complete", headers=users["alice"], json={"variables": {}})
    assert done.status_code == 200
    assert set_due(client, users, "admin", task.id, START + DAY).status_code == 409


def test_a_reassigned_task_keeps_its_due_date_and_reminds_the_new_assignee(client, users, context, published):
    deploy_fixture(client, users, "escalation_notify")
    instance_id = start(client, users, "escalation_notify")
    task = task_row(context, instance_id)
    moved = client.post(f"/api/v1/tasks/{task.id}/assign", headers=users["admin"], json={"assignee": "carol"})
    assert moved.status_code == 200, moved.json
    assert waiting_steps(context, instance_id) == [("remind", START + 3 * HOUR), ("overdue", START + 4 * HOUR)]
    move_to(context, 3 * HOUR)
    assert escalate(context) == 1
    assert published[-1].notify_users == ("carol",)


SENT_BACK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="draft_and_check" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="draft" name="Draft" camunda:assignee="alice" camunda:dueDate="PT4H">
      <bpmn:extensionElements><camunda:properties>
        <camunda:property name="bpm.remindBefore" value="PT1H" />
      </camunda:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="check" name="Check" camunda:assignee="bob">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="draft" />
    <bpmn:sequenceFlow id="f2" sourceRef="draft" targetRef="check" />
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_step_sent_back_gets_a_new_due_date_and_its_reminder_again(client, users, context, published):
    assert deploy(client, users["dora"], SENT_BACK.encode()).status_code == 201
    instance_id = start(client, users, "draft_and_check")
    draft = task_row(context, instance_id)
    move_to(context, HOUR)
    assert client.post(f"/api/v1/tasks/{draft.id}/complete", headers=users["alice"],
                       json={"variables": {}}).status_code == 200
    assert waiting_steps(context, instance_id) == []
    [check] = client.get("/api/v1/tasks", headers=users["bob"]).json["items"]
    move_to(context, 2 * HOUR)
    sent = client.post(f"/api/v1/tasks/{check['id']}/send-back", headers=users["bob"], json={"comment": "again"})
    assert sent.status_code == 200, sent.json
    assert open_tasks(context, instance_id) == ["draft"]
    with context.uow() as uow:
        reopened = uow.session.get(Task, draft.id)
    assert utc(reopened.due_at) == START + 6 * HOUR  # PT4H from the reopening
    assert waiting_steps(context, instance_id) == [("remind", START + 5 * HOUR)]
    move_to(context, 3 * HOUR)  # the first round's reminder time
    assert escalate(context) == 0
    move_to(context, 5 * HOUR - SECOND)
    assert escalate(context) == 0
    move_to(context, 5 * HOUR)
    assert escalate(context) == 1
    assert [type(e).__name__ for e in published] == ["TaskReminder"]
    [changed] = history(context, instance_id, "task.due_changed")
    assert changed.data["reason"] == "reopened"
