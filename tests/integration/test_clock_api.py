"""The controllable clock: with BPM_CLOCK=manual an admin moves time and due work fires at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import START
from timehelpers import deploy_fixture, fired_elements, open_tasks, start

from bpm.config import Settings


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings(database_url=database_url, var_dir=tmp_path, max_upload_bytes=2_000_000, clock="manual")


def test_advance_fires_due_timers_and_escalations(client, users, context):
    deploy_fixture(client, users, "timer_boundary")
    instance_id = start(client, users, "timer_boundary")
    assert client.get("/api/v1/clock", headers=users["admin"]).json["now"] == START.isoformat()

    moved = client.post("/api/v1/clock/advance", headers=users["admin"], json={"duration": "PT1H59M59S"})
    assert moved.status_code == 200, moved.json
    assert moved.json["now"] == (START + timedelta(hours=1, minutes=59, seconds=59)).isoformat()
    assert moved.json["ran"]["timers_fired"] == 3  # the R3/PT30M cycle caught up occurrence by occurrence
    assert open_tasks(context, instance_id) == ["review"]

    moved = client.post("/api/v1/clock/advance", headers=users["admin"], json={"duration": "PT1S"})
    assert moved.json["ran"]["timers_fired"] == 1
    assert fired_elements(context, instance_id) == ["nudge", "nudge", "nudge", "deadline"]
    assert open_tasks(context, instance_id) == ["escalate"]


def test_set_the_clock_forward_starts_scheduled_instances(client, users, context):
    deploy_fixture(client, users, "timer_start_date")
    moved = client.put("/api/v1/clock", headers=users["admin"], json={"now": "2026-01-06T09:00:00Z"})
    assert moved.status_code == 200, moved.json
    assert moved.json["ran"]["instances_started"] == 1


def test_only_admins_and_only_forward(client, users):
    assert client.post("/api/v1/clock/advance", headers=users["dora"], json={"duration": "P1D"}).status_code == 403
    assert client.get("/api/v1/clock", headers=users["alice"]).status_code == 403
    backwards = client.put("/api/v1/clock", headers=users["admin"], json={"now": "2025-01-01T00:00:00Z"})
    assert backwards.status_code == 422 and "backwards" in backwards.json["detail"]
    bad = client.post("/api/v1/clock/advance", headers=users["admin"], json={"duration": "three days"})
    assert bad.status_code == 422
    assert "duration" in str(bad.json)


def test_without_the_manual_clock_the_endpoints_are_404(client, users, context):
    context.settings = context.settings.with_overrides(clock="system")
    for response in (client.get("/api/v1/clock", headers=users["admin"]),
                     client.post("/api/v1/clock/advance", headers=users["admin"], json={"duration": "P1D"})):
        assert response.status_code == 404
        assert "BPM_CLOCK=manual" in response.json["detail"]
