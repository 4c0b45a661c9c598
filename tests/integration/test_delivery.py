"""Notifications through the transactional outbox: in-app rows, SMTP email, signed webhooks, retries with
backoff, failed deliveries over the API, and idempotent consumers (a repeated delivery is a no-op)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from conftest import START, bpmn_fixture, deploy
from receivers import SmtpSink, WebhookReceiver
from sqlalchemy import create_engine, func, select, text, update

from bpm.adapters.orm import Task, User
from bpm.adapters.orm_outbox import Notification, OutboxMessage
from bpm.config import Settings
from bpm.domain import events
from bpm.services import identity, notifications, outbox

SECRET = "whsec-test"


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings(database_url, tmp_path, smtp, webhook):
    return Settings(database_url=database_url, var_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port,
                    smtp_from="流程 <bpm@example.com>", webhook_url=webhook.url, webhook_secret=SECRET,
                    delivery_max_attempts=2)


@pytest.fixture
def lily(context, users):
    """A team lead with an email address (the standard users have none)."""
    lead = identity.CreateUser("lily", "李丽", "lily@example.com", ["team-leads"], ["approver"])
    identity.create_user(lead, context.uow())
    return users


def start_expense(client, users, business_key="EXP-1"):
    assert deploy(client, users["dora"], bpmn_fixture("expense_approval.bpmn")).status_code == 201
    started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                          json={"business_key": business_key, "variables": {"amount": 5000}})
    assert started.status_code == 201, started.json
    return started.json


def relay_and_deliver(context) -> list[str]:
    published: list[int] = []
    outbox.relay_outbox(context.uow, lambda outbox_id, _kind: published.append(outbox_id))
    channels = notifications.build_channels(context.settings)
    return [outbox.deliver(outbox_id, context.uow, channels) for outbox_id in published]


def outbox_rows(context) -> list[OutboxMessage]:
    with context.uow() as uow:
        return list(uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_new_task_notifies_every_candidate_in_app_and_nobody_else(client, lily):
    start_expense(client, lily)
    mine = client.get("/api/v1/notifications", headers=lily["alice"]).json
    assert [n["title"] for n in mine] == ["New task: Team lead review"]
    assert mine[0]["link"].startswith("/tasks/") and mine[0]["read_at"] is None
    assert client.get("/api/v1/notifications", headers=lily["bob"]).json == []
    assert client.get("/api/v1/notifications/unread-count", headers=lily["alice"]).json == {"unread": 1}


def test_a_new_task_notifies_active_members_in_their_language_and_emails_those_with_an_address(
        client, context, lily):
    for username, email in (("mei", "mei@example.com"), ("gone", "gone@example.com")):
        identity.create_user(identity.CreateUser(username, email=email, groups=["team-leads"], roles=["approver"]),
                             context.uow())
    with context.uow() as uow:
        uow.session.execute(update(User).where(User.username == "mei").values(locale="zh-CN"))
        uow.session.execute(update(User).where(User.username == "gone").values(active=False))
        uow.commit()
    started = start_expense(client, lily)
    with context.uow() as uow:
        titles = dict(uow.session.execute(select(Notification.username, Notification.title)).all())
        task = uow.session.scalars(select(Task).where(Task.instance_id == started["id"])).one()
    assert titles == {"alice": "New task: Team lead review", "lily": "New task: Team lead review",
                      "mei": "新任务：Team lead review"}
    facts = {"task_id": task.id, "instance_id": started["id"], "process_key": "expense_approval",
             "name": "Team lead review", "business_key": "EXP-1",
             "due_at": (START + timedelta(days=2)).isoformat(), "at": START.isoformat()}
    messages = [(row.kind, row.payload) for row in outbox_rows(context)]
    assert messages == [
        ("email", {"to": "lily@example.com", "username": "lily", "reason": "task_created", "language": "en",
                   "facts": facts}),
        ("email", {"to": "mei@example.com", "username": "mei", "reason": "task_created", "language": "zh",
                   "facts": facts}),
        ("webhook", {"reason": "task_created", "facts": facts, "recipients": ["alice", "lily", "mei"]})]


def test_a_new_tasks_notifications_are_written_with_the_transaction_and_only_with_it(context, lily):
    """On PostgreSQL the fan-out statement waits for the commit's round trip: an explicit flush sends it (a query
    of the same transaction sees the rows), a rollback drops it with everything else."""
    facts = {"name": "Contract review", "task_id": "t-1"}
    with context.uow() as uow:
        notifications.notify_named(uow, "task_created", facts, ["bob"], ["team-leads"])
        uow.flush()
        seen = list(uow.session.scalars(select(Notification.username).order_by(Notification.username)))
        kinds = list(uow.session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)))
    assert seen == ["alice", "bob", "lily"] and kinds == ["email", "webhook"]
    with context.uow() as uow:
        notifications.notify_named(uow, "task_created", facts, ["bob"], [])
    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Notification)) == 0
        assert uow.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_users_named_directly_and_through_a_group_are_notified_once(context, lily):
    """Recipients are the named users and the groups' members together: one in-app row each, in name order,
    a user in both counted once; no names and no groups is nobody."""
    facts = {"name": "Contract review", "task_id": "t-1"}
    with context.uow() as uow:
        assert notifications.resolve_recipients(uow, ["bob", "alice"], ["team-leads"]) == [
            ("alice", None, "en"), ("bob", None, "en"), ("lily", "lily@example.com", "en")]
        assert notifications.resolve_recipients(uow, ["bob"], []) == [("bob", None, "en")]
        notifications.notify_named(uow, "task_created", facts, ["bob", "alice"], ["team-leads"])
        notifications.notify_named(uow, "task_created", facts, [], [])
        uow.commit()
    with context.uow() as uow:
        names = list(uow.session.scalars(select(Notification.username).order_by(Notification.username)))
    assert names == ["alice", "bob", "lily"]


def test_a_large_groups_recipients_are_read_by_primary_key_among_many_users(postgres_url):
    """PostgreSQL, 20,000 users with statistics, a group of 300: the recipients of a new task are read by primary
    key, not by a scan of every user, at the planner's default random_page_cost (as `IN (subquery)` the planner
    scanned the users: cf. BENCHMARKS "Inbox"). Everything is rolled back, statistics included."""
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(text("SET LOCAL random_page_cost = 4"))
            connection.execute(text(
                "INSERT INTO users (username, display_name, roles, active, created_at) "
                "SELECT 'many-' || n, 'Many ' || n, '[]', true, now() FROM generate_series(1, 20000) AS n"))
            connection.execute(text("INSERT INTO groups (name, display_name) VALUES ('crowd', 'Crowd')"))
            connection.execute(text(
                "INSERT INTO user_groups (user_id, group_id) SELECT users.id, groups.id FROM users, groups "
                "WHERE groups.name = 'crowd' AND users.username LIKE 'many-%' AND users.id % 66 = 0"))
            connection.execute(text("ANALYZE users, groups, user_groups"))
            compiled = notifications._fan_out_statement(emails=True, robots=True).compile(connection)
            bound = compiled.construct_expanded_state({
                "users": [], "groups": ["crowd"], "title_en": "New task", "title_zh": "New task", "body": "",
                "link": None, "created_at": START, "reason": "task_created", "facts": "{}", "kinds": ["webhook"]})
            plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + bound.statement, bound.parameters).scalars())
            members = connection.execute(notifications._recipients_query(postgres=True),
                                         {"users": [], "groups": ["crowd"]}).all()
            transaction.rollback()
    finally:
        engine.dispose()
    assert len(members) == 20000 // 66
    assert "Seq Scan on users" not in plan and "users_pkey" in plan, plan


def test_marking_read_one_by_one_or_all_at_once(client, lily):
    start_expense(client, lily, "EXP-1")
    start_expense_again = client.post("/api/v1/process-definitions/expense_approval/instances",
                                      headers=lily["ivan"], json={"business_key": "EXP-2",
                                                                  "variables": {"amount": 10}})
    assert start_expense_again.status_code == 201
    first, second = client.get("/api/v1/notifications", headers=lily["alice"]).json
    read = client.post(f"/api/v1/notifications/{first['id']}/read", headers=lily["alice"])
    assert read.status_code == 200 and read.json["read_at"] is not None
    unread = client.get("/api/v1/notifications", headers=lily["alice"], query_string={"unread": "true"}).json
    assert [n["id"] for n in unread] == [second["id"]]
    # somebody else's notification is not found for bob, and stays unread
    assert client.post(f"/api/v1/notifications/{second['id']}/read", headers=lily["bob"]).status_code == 404
    assert client.post("/api/v1/notifications/read-all", headers=lily["alice"]).json == {"marked": 1}
    assert client.get("/api/v1/notifications/unread-count", headers=lily["alice"]).json == {"unread": 0}
    assert client.get("/api/v1/notifications/unread-count").status_code == 401


def test_email_and_signed_webhook_are_delivered_once_even_when_delivered_twice(client, context, lily, smtp,
                                                                               webhook):
    start_expense(client, lily)
    kinds = sorted(row.kind for row in outbox_rows(context))
    assert kinds == ["email", "webhook"]  # lily has an email, alice has none; one webhook per event

    assert relay_and_deliver(context) == ["delivered", "delivered"]
    assert all(row.status == "delivered" and row.attempts == 1 for row in outbox_rows(context))
    # a re-published message (the relay died before recording "published") is a no-op for the consumer
    channels = notifications.build_channels(context.settings)
    again = [outbox.deliver(row.id, context.uow, channels) for row in outbox_rows(context)]
    assert again == ["duplicate"] * 2
    assert relay_and_deliver(context) == []

    [mail] = smtp.messages
    assert mail["To"] == "lily@example.com"
    assert mail["Subject"] == "New task: Team lead review"
    assert mail["Message-ID"].startswith("<bpm-delivery-")
    assert mail.get_body(("plain",)).get_content().startswith("New task: Team lead review")
    assert '<a href="http://127.0.0.1:8000/tasks/' in mail.get_body(("html",)).get_content()
    assert str(mail["From"]).startswith("流程")

    assert webhook.bad_signatures == 0 and list(webhook.deliveries.values()) == [1]
    [body] = webhook.bodies
    assert body["event"] == "task.created" and body["data"]["process_key"] == "expense_approval"
    assert body["data"]["business_key"] == "EXP-1" and body["data"]["due_at"].startswith("2026-01-07T09:00")
    assert sorted(body["recipients"]) == ["alice", "lily"]


def test_failures_back_off_then_fail_and_an_admin_retries_them(client, context, lily, webhook, smtp):
    start_expense(client, lily)
    webhook.fail_next = 10
    assert sorted(relay_and_deliver(context)) == ["delivered", "retry"]
    [failing] = [row for row in outbox_rows(context) if row.kind == "webhook"]
    assert failing.status == "pending" and failing.attempts == 1 and "HTTP 500" in failing.last_error
    assert relay_and_deliver(context) == []  # not before the backoff of 30 s
    context.clock.advance(timedelta(seconds=29))
    assert relay_and_deliver(context) == []
    context.clock.advance(timedelta(seconds=1))
    assert relay_and_deliver(context) == ["failed"]  # the second and last attempt (delivery_max_attempts=2)

    failed = client.get("/api/v1/deliveries", headers=lily["admin"], query_string={"status": "failed"}).json
    assert [(d["id"], d["kind"], d["attempts"]) for d in failed] == [(failing.id, "webhook", 2)]
    assert client.get("/api/v1/deliveries", headers=lily["alice"]).status_code == 403
    context.clock.advance(timedelta(days=1))
    assert relay_and_deliver(context) == []  # failed for good: nothing retries it by itself

    webhook.fail_next = 0
    retried = client.post(f"/api/v1/deliveries/{failing.id}/retry", headers=lily["admin"])
    assert retried.status_code == 202
    assert retried.json["status"] == "pending" and retried.json["attempts"] == 0
    assert relay_and_deliver(context) == ["delivered"]
    assert list(webhook.deliveries.values()) == [1]
    done = client.post(f"/api/v1/deliveries/{failing.id}/retry", headers=lily["admin"])
    assert done.status_code == 409
    assert client.post("/api/v1/deliveries/999999/retry", headers=lily["admin"]).status_code == 404


def test_backoff_doubles_and_is_capped():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert outbox.backoff(30) == outbox.MAX_BACKOFF


def test_enqueue_with_a_dedupe_key_adds_the_message_once(context):
    with context.uow() as uow:
        first = outbox.enqueue(uow, "inapp", {"username": "alice", "title": "hi"}, dedupe_key="k-1")
        again = outbox.enqueue(uow, "inapp", {"username": "alice", "title": "hi"}, dedupe_key="k-1")
        other = outbox.enqueue(uow, "inapp", {"username": "alice", "title": "hi"})
        uow.commit()
    assert first == again != other
    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
    with context.uow() as uow:
        assert outbox.enqueue(uow, "inapp", {"username": "alice", "title": "hi"}, dedupe_key="k-1") == first
        # not committed: rolled back with the transaction, and nothing else was written
    assert relay_and_deliver(context) == ["delivered", "delivered"]


def test_enqueued_messages_vanish_with_a_rolled_back_transaction(context):
    with context.uow() as uow:
        outbox.enqueue(uow, "inapp", {"username": "alice", "title": "never"})
    assert outbox_rows(context) == []


def test_inapp_messages_through_the_outbox_land_in_the_users_list(client, context, users):
    with context.uow() as uow:
        outbox.enqueue(uow, "inapp", {"username": "bob", "title": "报价已批准", "link": "/quotes/7"})
        uow.commit()
    assert relay_and_deliver(context) == ["delivered"]
    [note] = client.get("/api/v1/notifications", headers=users["bob"]).json
    assert note["title"] == "报价已批准" and note["link"] == "/quotes/7"


def test_a_message_without_a_configured_channel_fails_with_the_reason(context):
    with context.uow() as uow:
        outbox.enqueue(uow, "carrier-pigeon", {"to": "x"})
        uow.commit()
    context.clock.advance(timedelta(0))
    assert relay_and_deliver(context) == ["retry"]
    [row] = outbox_rows(context)
    assert "no channel is configured for 'carrier-pigeon'" in row.last_error


def test_the_sweeper_republishes_messages_published_but_never_delivered(context):
    with context.uow() as uow:
        outbox.enqueue(uow, "inapp", {"username": "alice", "title": "lost"})
        uow.commit()
    lost: list[int] = []
    assert outbox.relay_outbox(context.uow, lambda outbox_id, _kind: lost.append(outbox_id)) == 1
    assert outbox.requeue_stuck(context.uow) == 0  # not stuck yet
    context.clock.advance(outbox.STUCK_AFTER + timedelta(seconds=1))
    assert outbox.requeue_stuck(context.uow) == 1
    assert relay_and_deliver(context) == ["delivered"]


def test_a_relay_that_cannot_publish_keeps_the_rest_pending(context):
    with context.uow() as uow:
        for n in range(3):
            outbox.enqueue(uow, "inapp", {"username": "alice", "title": f"n{n}"})
        uow.commit()
    sent: list[int] = []

    def broker_goes_down_after_one(outbox_id, _kind):
        if sent:
            raise ConnectionError("broker unreachable")
        sent.append(outbox_id)

    assert outbox.relay_outbox(context.uow, broker_goes_down_after_one) == 1
    assert [row.status for row in outbox_rows(context)] == ["published", "pending", "pending"]


def test_escalation_events_notify_their_audience_in_app_and_by_email(context, lily, smtp):
    overdue = getattr(events, "TaskOverdue", None)
    if overdue is None:
        pytest.skip("the escalation events are not defined in bpm.domain.events")
    with context.uow() as uow:
        uow.publish(overdue("t-1", "i-1", "complaint_handling", "plan", "Plan the fix", "alice",
                            notify_users=("carol",), notify_groups=("team-leads",)))
        uow.commit()
    for username in ("carol", "alice", "lily"):
        with context.uow() as uow:
            [note] = notifications.list_notifications(username, uow)
        assert note.title == "Overdue: Plan the fix" and note.link == "/tasks/t-1"
    with context.uow() as uow:
        assert notifications.list_notifications("bob", uow) == []
    assert relay_and_deliver(context) == ["delivered", "delivered"]  # lily's email and the webhook
    assert [m["Subject"] for m in smtp.messages] == ["Overdue: Plan the fix"]


def test_an_escalation_without_a_notify_list_goes_to_the_assignee(context, lily):
    class Reminder:  # any event shape: only the fields it has are read
        task_id, instance_id, process_key, name, assignee = "t-2", "i-2", "p", "Call back", "bob"

    with context.uow() as uow:
        notifications._notify_escalation("reminder")(Reminder(), uow)
        uow.commit()
    with context.uow() as uow:
        [note] = notifications.list_notifications("bob", uow)
    assert note.title == "Reminder: Call back is due soon"


def test_a_consumer_faster_than_the_relays_commit_waits_for_it_and_delivers(context):
    """The broker may hand the message to a worker before the relay has committed "published"."""
    with context.uow() as uow:
        outbox.enqueue(uow, "inapp", {"username": "alice", "title": "race"})
        uow.commit()
    channels = notifications.build_channels(context.settings)
    outcomes, consumers = [], []

    def publish_to_an_eager_consumer(outbox_id, _kind):
        consumer = threading.Thread(target=lambda: outcomes.append(outbox.deliver(outbox_id, context.uow,
                                                                                  channels)))
        consumer.start()
        consumers.append(consumer)
        time.sleep(0.3)  # the consumer is now blocked on the relay's open transaction

    assert outbox.relay_outbox(context.uow, publish_to_an_eager_consumer) == 1
    consumers[0].join(timeout=30)
    assert outcomes == ["delivered"]
    assert [row.status for row in outbox_rows(context)] == ["delivered"]


def fail_for_good(context, webhook) -> OutboxMessage:
    """Make the webhook message of the started expense fail its two attempts (delivery_max_attempts=2)."""
    webhook.fail_next = 10
    assert sorted(relay_and_deliver(context)) == ["delivered", "retry"]
    context.clock.advance(outbox.backoff(1))
    assert relay_and_deliver(context) == ["failed"]
    [failing] = [row for row in outbox_rows(context) if row.kind == "webhook"]
    assert failing.status == "failed"
    return failing


def test_a_delivery_that_fails_for_good_opens_an_incident_whose_retry_delivers_it_once(client, context, lily,
                                                                                       webhook):
    instance = start_expense(client, lily)
    [failing] = [row for row in outbox_rows(context) if row.kind == "webhook"]
    webhook.fail_next = 10
    assert sorted(relay_and_deliver(context)) == ["delivered", "retry"]
    # retrying on its own: not an incident yet
    assert client.get("/api/v1/incidents", headers=lily["admin"]).json == []
    context.clock.advance(outbox.backoff(1))
    assert relay_and_deliver(context) == ["failed"]

    failed = client.get("/api/v1/deliveries", headers=lily["admin"], query_string={"status": "failed"}).json
    assert [d["id"] for d in failed] == [failing.id]
    [incident] = client.get("/api/v1/incidents", headers=lily["admin"]).json
    assert incident["job_kind"] == "delivery" and incident["job_id"] == str(failing.id)
    assert incident["instance_id"] == instance["id"] and incident["process_key"] == "expense_approval"
    assert "failed after 2 attempt(s)" in incident["message"] and "HTTP 500" in incident["message"]
    assert incident["element_name"] == "webhook delivery to the configured webhook endpoint"
    assert incident["next_attempt_at"] is None  # nothing retries it by itself
    marker = client.get(f"/api/v1/process-instances/{instance['id']}", headers=lily["admin"]).json
    assert marker.get("incident") is None  # the instance is not stuck
    assert client.get("/api/v1/incidents", headers=lily["alice"]).status_code == 403
    context.clock.advance(timedelta(days=1))
    assert relay_and_deliver(context) == []

    webhook.fail_next = 0  # the cause is fixed
    retried = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=lily["admin"])
    assert retried.status_code == 200, retried.json
    assert retried.json["status"] == "open" and retried.json["next_attempt_at"] is not None  # queued
    [row] = [row for row in outbox_rows(context) if row.id == failing.id]
    assert row.status == "pending" and row.attempts == 0
    assert relay_and_deliver(context) == ["delivered"]
    assert relay_and_deliver(context) == []
    assert webhook.bad_signatures == 0 and list(webhook.deliveries.values()) == [1]

    done = client.get(f"/api/v1/incidents/{incident['id']}", headers=lily["admin"]).json
    assert done["status"] == "resolved" and done["resolution"] == "delivered after a retry"
    again = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=lily["admin"])
    assert again.status_code == 200 and again.json["status"] == "resolved"
    assert relay_and_deliver(context) == []
    assert list(webhook.deliveries.values()) == [1]


def test_a_retried_delivery_that_fails_again_updates_its_incident(client, context, lily, webhook):
    start_expense(client, lily)
    failing = fail_for_good(context, webhook)
    [incident] = client.get("/api/v1/incidents", headers=lily["admin"]).json
    retried = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=lily["admin"])
    assert retried.status_code == 200
    assert relay_and_deliver(context) == ["retry"]  # still broken: a fresh set of attempts, then failed again
    context.clock.advance(outbox.backoff(1))
    assert relay_and_deliver(context) == ["failed"]
    [updated] = client.get("/api/v1/incidents", headers=lily["admin"]).json
    assert updated["id"] == incident["id"] and updated["retries"] == 1 and updated["next_attempt_at"] is None
    # the failed-delivery retry endpoint also resolves the incident once the message gets through
    webhook.fail_next = 0
    assert client.post(f"/api/v1/deliveries/{failing.id}/retry", headers=lily["admin"]).status_code == 202
    assert relay_and_deliver(context) == ["delivered"]
    assert client.get("/api/v1/incidents", headers=lily["admin"]).json == []
    assert list(webhook.deliveries.values()) == [1]


def test_an_email_that_fails_for_good_is_an_incident_and_is_sent_once_after_the_retry(client, context, lily,
                                                                                     smtp):
    start_expense(client, lily)

    async def refuse(*_args):
        return "451 4.3.0 mail system unavailable"

    smtp.handle_DATA = refuse  # the mail server refuses every message
    assert sorted(relay_and_deliver(context)) == ["delivered", "retry"]
    context.clock.advance(outbox.backoff(1))
    assert relay_and_deliver(context) == ["failed"]
    [incident] = client.get("/api/v1/incidents", headers=lily["admin"]).json
    assert incident["element_name"] == "email delivery to lily@example.com"
    assert "451" in incident["message"]
    del smtp.handle_DATA  # fixed
    assert client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=lily["admin"]).status_code == 200
    assert relay_and_deliver(context) == ["delivered"]
    assert [m["To"] for m in smtp.messages] == ["lily@example.com"]
    assert client.get("/api/v1/incidents", headers=lily["admin"]).json == []


def test_a_failed_message_about_an_incident_does_not_announce_another_incident(context, webhook):
    published: list = []
    with context.uow() as uow:
        outbox.enqueue(uow, "webhook", {"url": webhook.url, "secret": SECRET, "event": "incident.created",
                                        "body": {"event": "incident.created", "data": {}}})
        uow.commit()
    webhook.fail_next = 10
    assert relay_and_deliver(context) == ["retry"]
    context.clock.advance(outbox.backoff(1))
    from bpm.services import handlers

    handlers.HANDLERS[events.IncidentOpened].append(lambda event, _uow: published.append(event))
    try:
        assert relay_and_deliver(context) == ["failed"]
    finally:
        handlers.HANDLERS[events.IncidentOpened].pop()
    assert published == []
    from bpm.adapters.orm_timers import Incident

    with context.uow() as uow:
        [incident] = uow.session.scalars(select(Incident))
    assert incident.job_kind == "delivery" and incident.instance_id is None
