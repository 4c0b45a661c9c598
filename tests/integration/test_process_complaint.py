"""The shipped complaint process through the API: SLA per step on both sides of its deadline, the engineer
group chosen by rule, the customer's reply correlated by ticket number and its 3-day timeout (the chase task,
on both sides of the boundary), high priority to the directors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from shipped_kit import complete, create_staff, deploy_shipped, get, inbox, only_task, post
from sqlalchemy import select

from bpm.adapters.orm import HistoryEntry
from bpm.services import escalation, timers

SECOND = timedelta(seconds=1)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# step, who works it, SLA, valid form data
STEPS = [
    ("register", "fred", timedelta(minutes=10),
     {"category": "product", "priority": "normal", "description": "the pump leaks oil"}),
    ("assign", "sue", timedelta(minutes=30), {"engineer_group": "engineers-product"}),
    ("plan", "ed", timedelta(hours=4), {"plan": "replace the seal on site"}),
    ("tell", "fred", timedelta(minutes=30), {"told_via": "call", "message": "an engineer comes tomorrow"}),
    ("resolve", "ed", timedelta(hours=24), {"resolution": "seal replaced and tested"}),
    ("follow_up", "sue", timedelta(days=1), {"satisfaction_score": 4, "comment": "quick and friendly"}),
]


@pytest.fixture
def staff(client, users, context):
    deploy_shipped(client, users["dora"], ("complaint_handling",))
    return create_staff(context)


def open_ticket(client, staff, priority="normal", category="product", customer="Acme") -> dict:
    customer_id = post(client, staff["fred"], "/api/v1/customers", {"name": customer})["id"]
    return post(client, staff["fred"], "/api/v1/tickets",
                {"customer_id": customer_id, "subject": "Pump leaking", "priority": priority,
                 "category": category, "description": "oil under the pump"})


def customer_replies(client, users, number, expected=200):
    response = client.post("/api/v1/messages", headers=users["ivan"],
                           json={"name": "customer_reply", "business_key": number,
                                 "variables": {"customer_reply": "ok, come at 10"}})
    assert response.status_code == expected, response.json
    return response.json


def drive_to(client, staff, users, number, target):
    """Work every step before `target` with valid data (the customer replies after 'tell')."""
    for step, who, _, data in STEPS:
        if step == target:
            return only_task(client, staff[who], number)
        task = only_task(client, staff[who], number)
        assert task["element_id"] == step
        complete(client, staff[who], task, data)
        if step == "tell":
            customer_replies(client, users, number)
    raise AssertionError(target)


def overdue_rows(context, element_id):
    with context.uow() as uow:
        rows = uow.session.scalars(select(HistoryEntry).where(HistoryEntry.event == "task.overdue",
                                                              HistoryEntry.element_id == element_id))
        return [row.data for row in rows]


@SQLITE_ONLY
@pytest.mark.parametrize(("step", "who", "sla", "data"), STEPS, ids=[s[0] for s in STEPS])
def test_each_step_escalates_to_the_supervisors_only_after_its_sla(client, staff, users, context, step, who, sla,
                                                                   data):
    ticket = open_ticket(client, staff)
    context.clock.advance(timedelta(minutes=3))  # steps start later than the ticket: SLAs count from the step
    task = drive_to(client, staff, users, ticket["number"], step)
    created = datetime.fromisoformat(task["created_at"])
    assert created == (context.clock.now() if step != "register" else context.clock.now() - timedelta(minutes=3))
    due = datetime.fromisoformat(task["due_at"])
    assert due == created + sla
    context.clock.set(due - SECOND)
    escalation.run_due_escalations(context.uow)
    assert overdue_rows(context, step) == []
    context.clock.set(due + SECOND)
    escalation.run_due_escalations(context.uow)
    [row] = overdue_rows(context, step)
    assert "group:service-supervisors" in row["recipients"] or "group:service-supervisors" in row["targets"]
    record = get(client, staff["fred"], f"/api/v1/tickets/{ticket['id']}")
    assert record["sla"][step]["due_at"] == due.isoformat()


def test_full_complaint_with_customer_reply_and_satisfaction(client, staff, users):
    ticket = open_ticket(client, staff)
    assert ticket["number"].startswith("T-2026-") and ticket["status"] == "open"
    drive_to(client, staff, users, ticket["number"], "resolve")
    for step, who, _, data in STEPS[4:]:
        task = only_task(client, staff[who], ticket["number"])
        if step == "follow_up":
            for bad in (0, 6, "4", 3.5):
                response = complete(client, staff[who], task, {"satisfaction_score": bad}, expected=422)
                assert list(response.json["errors"]) == ["satisfaction_score"]
        complete(client, staff[who], task, data)
    record = get(client, staff["fred"], f"/api/v1/tickets/{ticket['id']}")
    assert record["status"] == "closed" and record["satisfaction_score"] == 4
    assert record["engineer_group"] == "engineers-product"
    assert all(record["sla"][step]["met"] is True for step, *_ in STEPS)
    assert record["processes"][0]["status"] == "completed" and record["open_tasks"] == []
    assert {i["notes"] for i in record["interactions"]} >= {"replace the seal on site", "seal replaced and tested"}


@SQLITE_ONLY
def test_customer_reply_resumes_only_its_ticket(client, staff, users):
    first, second = open_ticket(client, staff), open_ticket(client, staff, customer="Beta")
    for ticket in (first, second):
        drive_to(client, staff, users, ticket["number"], "tell")
        complete(client, staff["fred"], only_task(client, staff["fred"], ticket["number"]), STEPS[3][3])
    assert inbox(client, staff["ed"], business_key=second["number"]) == []  # waiting for the customer
    result = customer_replies(client, users, second["number"])
    assert len(result["resumed"]) == 1
    assert only_task(client, staff["ed"], second["number"])["element_id"] == "resolve"
    assert inbox(client, staff["ed"], business_key=first["number"]) == []
    detail = get(client, users["admin"], f"/api/v1/process-instances/{result['resumed'][0]}")
    assert detail["variables"]["customer_reply"] == "ok, come at 10"


@SQLITE_ONLY
@pytest.mark.parametrize(("category", "engineer"), [("product", "ed"), ("delivery", "dan")])
def test_engineer_group_comes_from_the_category_rule(client, staff, users, category, engineer):
    ticket = open_ticket(client, staff, category=category)
    complete(client, staff["fred"], only_task(client, staff["fred"], ticket["number"]),
             {"category": category, "priority": "normal", "description": "the pump leaks oil"})
    assign = only_task(client, staff["sue"], ticket["number"])
    detail = get(client, staff["sue"], f"/api/v1/tasks/{assign['id']}")
    assert detail["data"]["engineer_group"] == f"engineers-{category}"
    assert detail["form"]["id"] == "complaint_assign"
    complete(client, staff["sue"], assign, {"engineer_group": detail["data"]["engineer_group"]})
    assert only_task(client, staff[engineer], ticket["number"])["element_id"] == "plan"


@pytest.mark.parametrize(("priority", "directors_told"), [("high", True), ("normal", False)])
def test_high_priority_notifies_the_service_directors_at_once(client, staff, users, priority, directors_told):
    ticket = open_ticket(client, staff, priority=priority)
    notes = get(client, staff["dora_d"], "/api/v1/notifications")
    assert any(ticket["number"] in n["title"] for n in notes) is directors_told
    history = get(client, users["admin"], f"/api/v1/process-instances/{ticket['instance_id']}/history")
    assert any(h["event"] == "complaint.high_priority" for h in history) is directors_told


# --- no reply from the customer: the wait times out after 3 days -------------------------------------------------

REPLY_WAIT = timedelta(days=3)
CHASE_SLA = timedelta(hours=4)


def at(context, moment: datetime) -> None:
    context.clock.set(moment)
    timers.fire_due_timers(context.uow)
    escalation.run_due_escalations(context.uow)


def told(client, staff, users, context) -> tuple[dict, datetime]:
    """A ticket whose customer was told the plan and has not replied yet; returns it and when the wait began."""
    ticket = open_ticket(client, staff)
    drive_to(client, staff, users, ticket["number"], "tell")
    complete(client, staff["fred"], only_task(client, staff["fred"], ticket["number"]), STEPS[3][3])
    return ticket, context.clock.now()


def ticket_record(client, staff, ticket) -> dict:
    return get(client, staff["fred"], f"/api/v1/tickets/{ticket['id']}")


def open_steps(client, staff, ticket) -> list[str]:
    return [t["element_id"] for t in ticket_record(client, staff, ticket)["open_tasks"]]


@SQLITE_ONLY
def test_a_reply_just_before_the_timeout_resumes_and_the_timer_never_fires(client, staff, users, context):
    ticket, waiting_since = told(client, staff, users, context)
    at(context, waiting_since + REPLY_WAIT - SECOND)
    assert open_steps(client, staff, ticket) == []
    assert ticket_record(client, staff, ticket)["status"] == "awaiting_customer"
    assert len(customer_replies(client, users, ticket["number"])["resumed"]) == 1
    at(context, waiting_since + REPLY_WAIT + SECOND)
    assert open_steps(client, staff, ticket) == ["resolve"]  # no chase task: the timer went with the wait
    assert ticket_record(client, staff, ticket)["status"] == "resolving"


@SQLITE_ONLY
@pytest.mark.parametrize("outcome", ["replied", "close"])
def test_no_reply_for_three_days_gives_the_front_line_a_chase_task(client, staff, users, context, outcome):
    ticket, waiting_since = told(client, staff, users, context)
    at(context, waiting_since + REPLY_WAIT + SECOND)
    chase = only_task(client, staff["fred"], ticket["number"])
    assert (chase["element_id"], chase["candidate_groups"]) == ("chase_reply", ["front-line-service"])
    assert datetime.fromisoformat(chase["due_at"]) == waiting_since + REPLY_WAIT + SECOND + CHASE_SLA
    record = ticket_record(client, staff, ticket)
    assert record["status"] == "chasing_customer" and record["sla"]["chase_reply"]["due_at"] == chase["due_at"]
    missing = complete(client, staff["fred"], chase, {"chased_via": "call"}, expected=422)
    assert sorted(missing.json["errors"]) == ["chase_notes", "chase_outcome"]
    complete(client, staff["fred"], chase, {"chased_via": "call", "chase_outcome": outcome,
                                            "chase_notes": "called twice, left a voicemail"})
    record = ticket_record(client, staff, ticket)
    assert "called twice, left a voicemail" in {i["notes"] for i in record["interactions"]}
    if outcome == "replied":
        assert open_steps(client, staff, ticket) == ["resolve"]
        assert record["status"] == "resolving" and record["processes"][0]["status"] == "running"
    else:
        assert open_steps(client, staff, ticket) == []
        assert (record["status"], record["processes"][0]["status"]) == ("closed_no_reply", "completed")
        assert record["closed_at"] == context.clock.now().isoformat()
        customer_replies(client, users, ticket["number"], expected=404)  # too late: nothing waits any more
        assert open_steps(client, staff, ticket) == []


@SQLITE_ONLY
def test_a_reply_while_the_chase_is_open_goes_ahead_and_closes_the_chase(client, staff, users, context):
    ticket, waiting_since = told(client, staff, users, context)
    at(context, waiting_since + REPLY_WAIT + SECOND)
    chase = only_task(client, staff["fred"], ticket["number"])
    assert len(customer_replies(client, users, ticket["number"])["resumed"]) == 1
    assert open_steps(client, staff, ticket) == ["resolve"]
    assert client.post(f"/api/v1/tasks/{chase['id']}/complete", headers=staff["fred"],
                       json={"variables": {}}).status_code in (404, 409)


@SQLITE_ONLY
def test_the_chase_step_escalates_to_the_supervisors_only_after_its_sla(client, staff, users, context):
    ticket, waiting_since = told(client, staff, users, context)
    at(context, waiting_since + REPLY_WAIT + SECOND)
    due = datetime.fromisoformat(only_task(client, staff["fred"], ticket["number"])["due_at"])
    at(context, due - SECOND)
    assert overdue_rows(context, "chase_reply") == []
    at(context, due + SECOND)
    [row] = overdue_rows(context, "chase_reply")
    assert "group:service-supervisors" in row["recipients"] or "group:service-supervisors" in row["targets"]
