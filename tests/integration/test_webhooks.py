"""Webhook subscriptions: CRUD, one outbox row per matching subscription, delivery log and redelivery."""

from __future__ import annotations

from conftest import bpmn_fixture, deploy

from bpm.adapters import channels
from bpm.services import outbox

EXPENSE = bpmn_fixture("expense_approval.bpmn")


def subscribe(client, headers, **body):
    return client.post("/api/v1/webhooks", headers=headers,
                       json={"url": "https://hooks.example.com/bpm", "events": ["instance.started"], **body})


def start(client, users, key="expense_approval"):
    response = client.post(f"/api/v1/process-definitions/{key}/instances", headers=users["ivan"],
                           json={"business_key": "W-1", "variables": {"amount": 10}})
    assert response.status_code == 201, response.json
    return response.json["id"]


def deliveries(client, headers, subscription_id):
    response = client.get(f"/api/v1/webhooks/{subscription_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_crud_and_secret_shown_once(client, users):
    created = subscribe(client, users["ivan"], format="dingtalk", process_key="expense_approval")
    assert created.status_code == 201, created.json
    assert len(created.json["secret"]) >= 32 and created.json["format"] == "dingtalk"
    hook_id = created.json["id"]
    listed = client.get("/api/v1/webhooks", headers=users["admin"]).json
    assert [h["id"] for h in listed] == [hook_id] and "secret" not in listed[0]
    patched = client.patch(f"/api/v1/webhooks/{hook_id}", headers=users["ivan"], json={"active": False})
    assert patched.status_code == 200 and patched.json["active"] is False
    assert client.get(f"/api/v1/webhooks/{hook_id}", headers=users["alice"]).status_code == 403
    assert client.delete(f"/api/v1/webhooks/{hook_id}", headers=users["ivan"]).status_code == 204
    assert client.get(f"/api/v1/webhooks/{hook_id}", headers=users["ivan"]).status_code == 404


def test_invalid_subscriptions_are_422_naming_the_field(client, users):
    bad_event = subscribe(client, users["ivan"], events=["instance.exploded"])
    assert bad_event.status_code == 422 and "events" in str(bad_event.json)
    bad_url = subscribe(client, users["ivan"], url="ftp://x")
    assert bad_url.status_code == 422 and "url" in str(bad_url.json)
    assert subscribe(client, users["dora"]).status_code == 403


def test_events_enqueue_one_signed_delivery_per_matching_subscription(client, users, context):
    deploy(client, users["dora"], EXPENSE)
    everything = subscribe(client, users["ivan"], events=["instance.started", "task.created"],
                           secret="s3cret-value").json
    other_key = subscribe(client, users["ivan"], process_key="someone_else").json
    paused = subscribe(client, users["ivan"], active=False).json
    instance_id = start(client, users)
    log = deliveries(client, users["ivan"], everything["id"])
    assert sorted(d["event"] for d in log) == ["instance.started", "task.created"]
    assert deliveries(client, users["ivan"], other_key["id"]) == []
    assert deliveries(client, users["ivan"], paused["id"]) == []
    started = next(d for d in log if d["event"] == "instance.started")
    assert started["body"]["data"]["instance_id"] == instance_id and started["status"] == "pending"
    with context.uow() as uow:
        row = uow.session.get(outbox.OutboxMessage, int(started["outbox_id"]))
        assert row.kind == "webhook"
        assert row.payload["url"] == "https://hooks.example.com/bpm" and row.payload["secret"] == "s3cret-value"
        assert row.payload["format"] == "generic" and row.payload["event"] == "instance.started"
    header = channels.sign("s3cret-value", 1_700_000_000, b'{"a":1}')
    assert channels.verify("s3cret-value", header, b'{"a":1}', now=1_700_000_000)


def test_failed_delivery_shows_in_the_log_and_can_be_redelivered(client, users, context):
    deploy(client, users["dora"], EXPENSE)
    hook = subscribe(client, users["ivan"]).json
    start(client, users)
    [delivery] = deliveries(client, users["ivan"], hook["id"])

    def refuse(message, uow):
        raise ConnectionError("connection refused")

    for _ in range(outbox.DEFAULT_MAX_ATTEMPTS):
        outbox.deliver(int(delivery["outbox_id"]), context.uow, {"webhook": refuse})
    [failed] = deliveries(client, users["ivan"], hook["id"])
    assert failed["status"] == "failed" and "connection refused" in failed["last_error"]

    again = client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver",
                        headers=users["ivan"])
    assert again.status_code == 202 and again.json["status"] == "pending" and again.json["attempts"] == 0
    sent = []
    assert outbox.deliver(int(delivery["outbox_id"]), context.uow,
                          {"webhook": lambda message, uow: sent.append(message.payload)}) == "delivered"
    assert sent[0]["event"] == "instance.started"

    resent = client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver",
                         headers=users["ivan"])
    assert resent.status_code == 202 and resent.json["redelivery_of"] == delivery["id"]
    assert len(deliveries(client, users["ivan"], hook["id"])) == 2
    missing = client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/999999/redeliver", headers=users["ivan"])
    assert missing.status_code == 404


def test_a_moved_due_date_reaches_the_subscribers_of_task_due_changed(client, users, context):
    from datetime import timedelta

    from conftest import START, bpmn_fixture, deploy

    moved = subscribe(client, users["ivan"], events=["task.due_changed"]).json
    other = subscribe(client, users["ivan"], events=["task.overdue"]).json
    deploy(client, users["admin"], bpmn_fixture("escalation_notify.bpmn"), "escalation_notify.bpmn")
    started = client.post("/api/v1/process-definitions/escalation_notify/instances", headers=users["admin"],
                          json={"business_key": "DUE-1"})
    assert started.status_code == 201, started.json
    from sqlalchemy import select

    from bpm.adapters.orm import Task

    with context.uow() as uow:
        [task_id] = uow.session.scalars(select(Task.id).where(Task.business_key == "DUE-1"))
    task = {"id": task_id}
    for hours in (8, 6):
        response = client.put(f"/api/v1/tasks/{task['id']}/due-date", headers=users["admin"],
                              json={"due_at": (START + timedelta(hours=hours)).isoformat(), "comment": "moved"})
        assert response.status_code == 200, response.json
    first, second = sorted(deliveries(client, users["ivan"], moved["id"]), key=lambda d: d["id"])
    assert first["event"] == "task.due_changed"
    data = first["body"]["data"]
    assert data["task_id"] == task["id"] and data["business_key"] == "DUE-1" and data["changed_by"] == "admin"
    assert (data["previous_due_at"], data["due_at"]) == ((START + timedelta(hours=4)).isoformat(),
                                                         (START + timedelta(hours=8)).isoformat())
    assert second["body"]["data"]["due_at"] == (START + timedelta(hours=6)).isoformat()  # each change, not deduped
    assert deliveries(client, users["ivan"], other["id"]) == []


def test_overdue_and_incident_events_reach_their_subscribers(client, users, context):
    from bpm.domain import events

    overdue = subscribe(client, users["ivan"], events=["task.overdue"]).json
    incident = subscribe(client, users["ivan"], events=["incident.created"], process_key="quotes").json
    with context.uow() as uow:
        uow.publish(events.TaskOverdue("t-1", "i-1", "quotes", "review", "Review", "alice"))
        uow.publish(events.IncidentOpened(7, None, "quotes", "send", "timer", "boom"))
        uow.publish(events.IncidentOpened(8, None, "other", "send", "timer", "not for this subscription"))
        uow.commit()
    [late] = deliveries(client, users["ivan"], overdue["id"])
    assert late["event"] == "task.overdue" and late["body"]["data"]["task_id"] == "t-1"
    [broken] = deliveries(client, users["ivan"], incident["id"])
    assert broken["body"]["data"]["incident_id"] == 7


def complete_open_task(client, users, instance_id, approver):
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["ivan"]).json
    [task] = detail["open_tasks"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=users[approver], json={"variables": {}})
    assert done.status_code == 200, done.json
    return task


def test_a_completion_delivers_its_events_and_reads_no_subscriptions_when_none_is_active(client, users):
    deploy(client, users["dora"], EXPENSE)
    paused = subscribe(client, users["ivan"], events=["task.completed", "task.created"], active=False).json
    first = start(client, users)  # amount 10: lead review, then director approval
    complete_open_task(client, users, first, "alice")
    assert deliveries(client, users["ivan"], paused["id"]) == []  # only an inactive subscription: nothing

    active = subscribe(client, users["ivan"], events=["task.completed", "task.created"]).json
    second = start(client, users)
    created_at_start = deliveries(client, users["ivan"], active["id"])
    lead = complete_open_task(client, users, second, "alice")
    log = deliveries(client, users["ivan"], active["id"])
    assert sorted(d["event"] for d in log) == ["task.completed", "task.created", "task.created"]
    [completed] = [d for d in log if d["event"] == "task.completed"]
    assert completed["body"]["data"]["task_id"] == lead["id"]
    [director] = [d for d in log if d["event"] == "task.created" and d["id"] not in {c["id"] for c in created_at_start}]
    assert director["body"]["data"]["element_id"] == "director_approval"
    assert deliveries(client, users["ivan"], paused["id"]) == []
