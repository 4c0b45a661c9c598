"""The shipped lead follow-up process through the API: assignment by rule and round-robin, first contact SLA
(reminder before, escalation after), return to the pool after 3 days, the 30-day reclaim ban, conversion, and
the daily dormant-customer check (scheduled in the embedded scheduler and in Celery beat)."""

from __future__ import annotations

import queue
from datetime import datetime, timedelta

import pytest
from shipped_kit import complete, create_staff, deploy_shipped, get, inbox, only_task, post
from sqlalchemy import func, select

from bpm.adapters.orm import HistoryEntry, ProcessInstance
from bpm.config import Settings
from bpm.services import escalation, records, timers
from workers import celery_app, embedded
from workers import context as worker_context
from workers import tasks as celery_tasks

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CONTACT = {"kind": "call", "notes": "talked to the buyer", "outcome": "follow_up"}


@pytest.fixture
def staff(client, users, context):
    deploy_shipped(client, users["dora"], ("lead_follow_up", "dormant_customer"))
    return create_staff(context, supervisors={"east1": "sam", "east2": "sam", "east3": "sam"})


def new_lead(client, staff, region="east", industry="retail", name="Zhou Trading") -> dict:
    return post(client, staff["amy"], "/api/v1/leads", {"name": name, "region": region, "industry": industry,
                                                        "source": "fair"})


def lead_of(client, staff, lead) -> dict:
    return get(client, staff["amy"], f"/api/v1/leads/{lead['id']}")


def events_of(context, event, element_id) -> list[dict]:
    with context.uow() as uow:
        rows = uow.session.scalars(select(HistoryEntry).where(HistoryEntry.event == event,
                                                              HistoryEntry.element_id == element_id))
        return [row.data for row in rows]


def at(context, moment: datetime) -> None:
    context.clock.set(moment)
    timers.fire_due_timers(context.uow)
    escalation.run_due_escalations(context.uow)


def test_assignment_by_rule_then_round_robin_within_the_team(client, staff):
    owners = [new_lead(client, staff, name=f"Lead {i}")["owner"] for i in range(4)]
    assert owners == ["east1", "east2", "east3", "east1"]
    banking = new_lead(client, staff, industry="banking")
    assert (banking["team"], banking["owner"]) == ("sales-key-accounts", "kay")
    assert banking["number"].startswith("L-2026-") and banking["processes"][0]["status"] == "running"
    assert [t["element_id"] for t in banking["open_tasks"]] == ["first_contact"]
    assert only_task(client, staff["kay"], banking["number"])["assignee"] == "kay"


@SQLITE_ONLY
def test_first_contact_reminds_before_and_escalates_after_24h(client, staff, context):
    lead = new_lead(client, staff)
    task = only_task(client, staff["east1"], lead["number"])
    due = datetime.fromisoformat(task["due_at"])
    assert due == context.clock.now() + DAY
    remind = due - timedelta(hours=4)
    at(context, remind - SECOND)
    assert events_of(context, "task.reminded", "first_contact") == []
    at(context, remind + SECOND)
    assert len(events_of(context, "task.reminded", "first_contact")) == 1
    at(context, due - SECOND)
    assert events_of(context, "task.overdue", "first_contact") == []
    at(context, due + SECOND)
    [overdue] = events_of(context, "task.overdue", "first_contact")
    assert "user:sam" in overdue["recipients"]  # the owner's supervisor


@SQLITE_ONLY
@pytest.mark.parametrize("contacted_first", [False, True], ids=["no-first-contact", "no-follow-up"])
def test_three_days_without_follow_up_returns_the_lead_to_the_pool(client, staff, context, contacted_first):
    lead = new_lead(client, staff)
    start = context.clock.now()
    if contacted_first:
        context.clock.advance(DAY)
        complete(client, staff["east1"], only_task(client, staff["east1"], lead["number"]), CONTACT)
        start = context.clock.now()
        assert lead_of(client, staff, lead)["last_follow_up_at"] == start.isoformat()
    at(context, start + 3 * DAY - SECOND)
    assert lead_of(client, staff, lead)["in_pool"] is False
    at(context, start + 3 * DAY + SECOND)
    pooled = lead_of(client, staff, lead)
    assert (pooled["in_pool"], pooled["owner"], pooled["status"]) == (True, None, "pooled")
    assert pooled["pool_history"][0]["previous_owner"] == "east1"
    assert [t["element_id"] for t in pooled["open_tasks"]] == ["pool"]
    assert inbox(client, staff["east1"], business_key=lead["number"], scope="mine") == []
    listed = get(client, staff["east2"], "/api/v1/leads?in_pool=true&team=sales-east")
    assert [item["number"] for item in listed] == [lead["number"]]


def pooled_lead(client, staff, context) -> tuple[dict, datetime]:
    lead = new_lead(client, staff)
    returned = context.clock.now() + 3 * DAY + SECOND
    at(context, returned)
    assert lead_of(client, staff, lead)["in_pool"] is True
    return lead, returned


@SQLITE_ONLY
@pytest.mark.parametrize(("days", "claimer", "status"), [
    (29, "east1", 409),  # the salesperson who lost it: banned for 30 days
    (31, "east1", 200),
    (29, "east2", 200),  # anyone else in the team may claim it at once
    (1, "kay", 403),     # not in the lead's team
])
def test_reclaim_ban(client, staff, context, days, claimer, status):
    lead, returned = pooled_lead(client, staff, context)
    context.clock.set(returned + days * DAY)
    response = client.post(f"/api/v1/leads/{lead['id']}/claim", headers=staff[claimer])
    assert response.status_code == status, response.json
    if status == 409:
        assert response.json["available_from"] == (returned + 30 * DAY).isoformat()
        assert (returned + 30 * DAY).date().isoformat() in response.json["detail"]
        pool = only_task(client, staff["east1"], lead["number"])  # the generic task API keeps the ban too
        bypass = complete(client, staff["east1"], pool, {"owner": "east1"}, expected=409)
        assert bypass.json["available_from"] == response.json["available_from"]
        assert lead_of(client, staff, lead)["in_pool"] is True
    if status == 200:
        claimed = lead_of(client, staff, lead)
        assert (claimed["owner"], claimed["in_pool"]) == (claimer, False)
        assert claimed["pool_history"][0]["claimed_by"] == claimer
        assert only_task(client, staff[claimer], lead["number"])["element_id"] == "follow_up"


def test_conversion_ends_the_process_and_creates_the_customer(client, staff, context):
    lead = new_lead(client, staff)
    task = only_task(client, staff["east1"], lead["number"])
    missing = complete(client, staff["east1"], task, {**CONTACT, "outcome": "convert"}, expected=422)
    assert list(missing.json["errors"]) == ["customer_name"]
    complete(client, staff["east1"], task, {**CONTACT, "outcome": "convert", "customer_name": "周氏贸易"})
    converted = lead_of(client, staff, lead)
    assert converted["status"] == "converted" and converted["processes"][0]["status"] == "completed"
    customer = get(client, staff["amy"], f"/api/v1/customers/{converted['customer_id']}")
    assert (customer["name"], customer["owner"]) == ("周氏贸易", "east1")
    assert [(item["number"], item["status"]) for item in customer["leads"]] == [(lead["number"], "converted")]


@SQLITE_ONLY
def test_dormant_customer_check_raises_one_task_for_the_owner(client, staff, context):
    quiet = post(client, staff["east1"], "/api/v1/customers", {"name": "Quiet Ltd"})
    busy = post(client, staff["east2"], "/api/v1/customers", {"name": "Busy Ltd"})
    context.clock.advance(DAY)
    post(client, staff["east2"], "/api/v1/interactions", {"kind": "visit", "notes": "demo", "customer_id": busy["id"]})
    context.clock.advance(29 * DAY)  # quiet: 30 days since creation; busy: 29 days since the visit
    assert records.raise_dormant_customer_tasks(context.uow) == 1
    assert records.raise_dormant_customer_tasks(context.uow) == 0  # already raised
    task = only_task(client, staff["east1"], f"C-{quiet['id']}")
    assert task["name"] == "Dormant customer: get in touch" and task["assignee"] == "east1"
    assert inbox(client, staff["east2"], business_key=f"C-{busy['id']}") == []
    context.clock.advance(2 * DAY)
    assert records.raise_dormant_customer_tasks(context.uow) == 1  # busy is now dormant too
    complete(client, staff["east1"], task, {"kind": "call", "notes": "they are fine"})
    assert get(client, staff["east1"], f"/api/v1/customers/{quiet['id']}")["last_interaction_at"] == \
        context.clock.now().isoformat()
    assert records.raise_dormant_customer_tasks(context.uow) == 0


# --- the dormant-customer check runs once a day, in the embedded scheduler and in Celery beat --------------------


def dormant_instances(context, customer) -> int:
    with context.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(ProcessInstance).where(
            ProcessInstance.process_key == records.DORMANT_PROCESS,
            ProcessInstance.business_key == f"C-{customer['id']}"))


def test_the_dormant_check_is_scheduled_daily_at_the_configured_time_in_both_schedulers():
    assert Settings().dormant_check_at == "01:00"
    configured = Settings.from_env({"BPM_DORMANT_CHECK_AT": "06:30"})
    entry = celery_app.make_celery(configured).conf.beat_schedule["dormant-customer-check"]
    assert entry["task"] == "bpm.raise_dormant_customer_tasks"
    assert entry["task"] in celery_app.celery_app.tasks
    assert celery_app.ROUTES[entry["task"]]["queue"] == celery_app.SCHEDULING_QUEUE
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({6}, {30})
    assert entry["options"]["expires"] >= 3600  # a daily run may wait for a busy worker; it is not a tick
    assert [(name, setting) for name, _, setting in embedded.DAILY] == [("dormant_customer_check", "dormant_check_at")]
    for bad in ("25:00", "6", "06:60", ""):
        with pytest.raises(ValueError):
            celery_app.make_celery(Settings(dormant_check_at=bad))


@pytest.mark.parametrize(("now", "last_run", "due"), [
    (datetime(2026, 2, 4, 9, 59, 59), None, False),
    (datetime(2026, 2, 4, 10, 0, 0), None, True),
    (datetime(2026, 2, 4, 23, 0, 0), None, True),  # started late that day: catches up
    (datetime(2026, 2, 4, 23, 0, 0), datetime(2026, 2, 4).date(), False),
    (datetime(2026, 2, 5, 9, 0, 0), datetime(2026, 2, 4).date(), False),
    (datetime(2026, 2, 5, 10, 0, 1), datetime(2026, 2, 4).date(), True),
])
def test_a_daily_job_is_due_once_a_day_from_its_time(now, last_run, due):
    from datetime import UTC

    assert records.daily_run_due(now.replace(tzinfo=UTC), records.time_of_day("10:00"), last_run) is due


def test_the_embedded_scheduler_runs_the_dormant_check_when_the_clock_passes_its_time(client, staff, context,
                                                                                      monkeypatch):
    monkeypatch.setattr(context, "settings", context.settings.with_overrides(dormant_check_at="10:00"))
    monkeypatch.setattr(embedded, "_daily_last_run", {})
    runs = []

    def counted(uow_factory):
        runs.append(context.clock.now())
        return records.raise_dormant_customer_tasks(uow_factory)

    monkeypatch.setattr(embedded, "DAILY", (("dormant_customer_check", counted, "dormant_check_at"),))
    quiet = post(client, staff["east1"], "/api/v1/customers", {"name": "Quiet Ltd"})
    day = context.clock.now() + 30 * DAY  # quiet: 30 days without interaction
    deliveries: queue.Queue = queue.Queue()
    context.clock.set(day.replace(hour=9, minute=59, second=59))
    embedded.run_tick(context, deliveries)
    assert runs == [] and inbox(client, staff["east1"], business_key=f"C-{quiet['id']}") == []
    context.clock.set(day.replace(hour=10, minute=0, second=1))
    embedded.run_tick(context, deliveries)
    assert len(runs) == 1
    task = only_task(client, staff["east1"], f"C-{quiet['id']}")
    assert (task["name"], task["assignee"]) == ("Dormant customer: get in touch", "east1")
    context.clock.advance(timedelta(hours=1))
    embedded.run_tick(context, deliveries)
    assert len(runs) == 1  # once a day
    # A restarted server runs it again the same day, and Celery beat may run it too: neither raises a second task.
    monkeypatch.setattr(embedded, "_daily_last_run", {})
    embedded.run_tick(context, deliveries)
    monkeypatch.setattr(worker_context, "current", lambda: context)
    assert len(runs) == 2 and celery_tasks.raise_dormant_customer_tasks() == 0
    assert dormant_instances(context, quiet) == 1
    # The next day the check runs again; the customer's dormant task is still open, so no new one.
    context.clock.set((day + DAY).replace(hour=10, minute=0, second=1))
    embedded.run_tick(context, deliveries)
    assert len(runs) == 3 and dormant_instances(context, quiet) == 1
    assert celery_tasks.raise_dormant_customer_tasks() == 0


def test_the_celery_task_raises_the_dormant_tasks_once(client, staff, context, monkeypatch):
    monkeypatch.setattr(worker_context, "current", lambda: context)
    quiet = post(client, staff["east1"], "/api/v1/customers", {"name": "Quiet Ltd"})
    context.clock.advance(30 * DAY)
    assert celery_tasks.raise_dormant_customer_tasks() == 1
    assert celery_tasks.raise_dormant_customer_tasks() == 0
    assert only_task(client, staff["east1"], f"C-{quiet['id']}")["assignee"] == "east1"


def test_two_checks_racing_on_the_same_day_raise_one_task(client, staff, context, monkeypatch):
    quiet = post(client, staff["east1"], "/api/v1/customers", {"name": "Quiet Ltd"})
    context.clock.advance(30 * DAY)
    stale = records._dormant_customers(context.uow())  # what a second scheduler read before the first committed
    assert [row[0] for row in stale] == [quiet["id"]]
    assert records.raise_dormant_customer_tasks(context.uow) == 1
    monkeypatch.setattr(records, "_dormant_customers", lambda _uow: stale)
    assert records.raise_dormant_customer_tasks(context.uow) == 0
    assert dormant_instances(context, quiet) == 1
