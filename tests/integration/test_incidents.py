"""A failing background step rolls back, opens an incident (visible and retryable over the API), backs off
instead of refiring in a hot loop, and never blocks other timers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from timehelpers import (
    deploy_fixture,
    fire,
    fired_elements,
    history,
    instance,
    move_to,
    open_tasks,
    start,
    waiting_timers,
)

from bpm import engine
from bpm.adapters.orm_timers import Incident
from bpm.services import incidents

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def all_incidents(context) -> list[Incident]:
    with context.uow() as uow:
        return list(uow.session.scalars(select(Incident).order_by(Incident.id)))


def test_a_failing_timer_opens_an_incident_and_leaves_the_instance_as_it_was(client, users, context):
    deploy_fixture(client, users, "timer_failing")  # the boundary timer leads into a gateway that cannot decide
    deploy_fixture(client, users, "timer_intermediate")
    broken = start(client, users, "timer_failing")
    healthy = start(client, users, "timer_intermediate")
    before = instance(context, broken)
    move_to(context, DAY)

    assert fire(context) == 1  # the healthy instance's timer fires; the broken one does not block it
    assert fired_elements(context, healthy) == ["wait_day"]
    after = instance(context, broken)
    assert after.state_json == before.state_json  # rolled back
    assert open_tasks(context, broken) == ["review"]
    assert [e for e, _ in waiting_timers(context, broken)] == ["deadline"]  # the row stays
    assert after.incident["element_id"] == "route" and after.incident["job_kind"] == "timer"
    assert "missing_variable" in after.incident["error"]
    [incident] = all_incidents(context)
    assert incident.instance_id == broken and incident.process_key == "timer_failing"
    assert incident.element_id == "route" and incident.element_name == "Route"
    assert incident.retries == 0 and incident.resolved_at is None
    assert [h.event for h in history(context, broken)][-1] == "incident.opened"

    assert fire(context) == 0  # backing off: not refired in a hot loop
    assert all_incidents(context)[0].retries == 0
    move_to(context, DAY + timedelta(seconds=incidents.BACKOFF[0]))
    assert fire(context) == 0  # the automatic retry ran and failed again
    assert all_incidents(context)[0].retries == 1


def test_incidents_over_the_api_and_a_retry_after_the_cause_is_fixed(client, users, context, monkeypatch):
    deploy_fixture(client, users, "timer_intermediate")
    instance_id = start(client, users, "timer_intermediate")
    move_to(context, DAY)

    def broken_engine(*_args, **_kwargs):
        raise engine.EngineError("the mail relay is down", "wait_day", "One day")

    monkeypatch.setattr(engine, "fire_due_timers", broken_engine)
    assert fire(context) == 0
    monkeypatch.undo()  # the cause is fixed

    listed = client.get("/api/v1/incidents", headers=users["dora"], query_string={"key": "timer_intermediate"})
    assert listed.status_code == 200, listed.json
    [incident] = listed.json
    assert incident["status"] == "open" and incident["message"] == "the mail relay is down"
    assert incident["element_id"] == "wait_day" and incident["instance_id"] == instance_id
    assert client.get("/api/v1/incidents", headers=users["dora"],
                      query_string={"key": "other"}).json == []
    assert client.get("/api/v1/incidents", headers=users["alice"]).status_code == 403
    assert client.get(f"/api/v1/incidents/{incident['id']}", headers=users["admin"]).json["job_kind"] == "timer"
    assert client.get("/api/v1/incidents/999999", headers=users["admin"]).status_code == 404

    retried = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=users["dora"])
    assert retried.status_code == 200, retried.json
    assert retried.json["status"] == "resolved" and retried.json["resolved_by"] == "dora"
    assert fired_elements(context, instance_id) == ["wait_day"]
    assert instance(context, instance_id).incident is None
    assert client.get("/api/v1/incidents", headers=users["dora"]).json == []
    resolved = client.get("/api/v1/incidents", headers=users["dora"], query_string={"status": "resolved"}).json
    assert [i["id"] for i in resolved] == [incident["id"]]


def test_a_retry_that_fails_again_keeps_the_incident_open(client, users, context):
    deploy_fixture(client, users, "timer_failing")
    instance_id = start(client, users, "timer_failing")
    move_to(context, HOUR)
    fire(context)
    [incident] = all_incidents(context)
    retried = client.post(f"/api/v1/incidents/{incident.id}/retry", headers=users["admin"])
    assert retried.status_code == 200, retried.json
    assert retried.json["status"] == "open" and retried.json["retries"] == 1
    assert open_tasks(context, instance_id) == ["review"]
    assert client.post(f"/api/v1/incidents/{incident.id}/retry", headers=users["bob"]).status_code == 403


def test_an_incident_whose_timer_is_gone_resolves_on_retry(client, users, context):
    deploy_fixture(client, users, "timer_failing")
    instance_id = start(client, users, "timer_failing")
    move_to(context, HOUR)
    fire(context)
    [incident] = all_incidents(context)
    assert client.post(f"/api/v1/process-instances/{instance_id}/cancel", headers=users["ivan"],
                       json={}).status_code == 200
    retried = client.post(f"/api/v1/incidents/{incident.id}/retry", headers=users["admin"])
    assert retried.json["status"] == "resolved"


def test_a_failing_escalation_becomes_an_incident_and_backs_off(client, users, context, monkeypatch):
    from timehelpers import escalate

    from bpm.adapters.orm_timers import TaskDeadline
    from bpm.services import escalation, tasks

    deploy_fixture(client, users, "escalation_timeout")  # auto-reject 12 hours after the 2-day due date
    instance_id = start(client, users, "escalation_timeout")

    def refusing(*_args, **_kwargs):
        raise RuntimeError("the approval form cannot be completed automatically")

    monkeypatch.setattr(tasks, "complete_task", refusing)
    move_to(context, 2 * DAY + 12 * HOUR)
    assert escalate(context) == 0
    assert open_tasks(context, instance_id) == ["approve"]
    [incident] = all_incidents(context)
    assert incident.job_kind == "escalation" and incident.element_id == "approve"
    with context.uow() as uow:
        [deadline] = uow.session.scalars(select(TaskDeadline).where(TaskDeadline.instance_id == instance_id))
    assert deadline.status == "waiting"  # rolled back, still due
    assert escalate(context) == 0 and all_incidents(context)[0].retries == 0  # backing off

    monkeypatch.undo()
    retried = client.post(f"/api/v1/incidents/{incident.id}/retry", headers=users["admin"])
    assert retried.json["status"] == "resolved", retried.json
    assert open_tasks(context, instance_id) == []
    assert [h.event for h in history(context, instance_id, "task.auto_completed")] == ["task.auto_completed"]
    assert escalation.run_due_escalations(context.uow) == 0
