"""Timers are rows: each kind fires at its due time and not a second before, once, and cancelled branches
take their timers with them. Timer start events create instances on schedule."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from conftest import START
from sqlalchemy import select
from timehelpers import (
    SECOND,
    count_instances,
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

from bpm.adapters.orm import ProcessInstance
from bpm.adapters.orm_timers import TimerSchedule
from bpm.clock import utc
from bpm.services import timers

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def test_boundary_cycle_fires_three_times_then_the_interrupting_timer_moves_the_token(client, users, context):
    deploy_fixture(client, users, "timer_boundary")
    instance_id = start(client, users, "timer_boundary")
    assert [(e, utc(d)) for e, d in waiting_timers(context, instance_id)] == [
        ("deadline", START + 2 * HOUR), ("nudge", START + 30 * MINUTE)]

    for due in (30 * MINUTE, 60 * MINUTE, 90 * MINUTE):  # the non-interrupting cycle R3/PT30M
        move_to(context, due - SECOND)
        assert fire(context) == 0
        move_to(context, due)
        assert fire(context) == 1
        assert open_tasks(context, instance_id) == ["review"]  # non-interrupting: the task stays
    assert fired_elements(context, instance_id) == ["nudge", "nudge", "nudge"]
    assert [e for e, _ in waiting_timers(context, instance_id)] == ["deadline"]  # the cycle is exhausted

    move_to(context, 2 * HOUR - SECOND)
    assert fire(context) == 0
    assert open_tasks(context, instance_id) == ["review"]
    move_to(context, 2 * HOUR)
    assert fire(context) == 1
    assert open_tasks(context, instance_id) == ["escalate"]  # interrupting: review cancelled
    assert waiting_timers(context, instance_id) == []
    [fired] = history(context, instance_id, "timer.fired")[-1:]
    assert fired.element_id == "deadline" and fired.actor == "system"
    assert fired.data["due_at"] == (START + 2 * HOUR).isoformat() and fired.data["lag_seconds"] == 0
    assert [h.event for h in history(context, instance_id)][-3:] == ["timer.fired", "task.cancelled", "task.created"]


def test_completing_the_task_first_deletes_its_boundary_timers(client, users, context):
    deploy_fixture(client, users, "timer_boundary")
    instance_id = start(client, users, "timer_boundary")
    [task] = client.get("/api/v1/tasks", headers=users["alice"]).json["items"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=users["alice"], json={"variables": {}})
    assert done.status_code == 200, done.json
    assert waiting_timers(context, instance_id) == []
    move_to(context, 3 * HOUR)
    assert fire(context) == 0
    assert fired_elements(context, instance_id) == []
    assert instance(context, instance_id).status == "completed"


def test_cancelling_the_instance_deletes_its_timers(client, users, context):
    deploy_fixture(client, users, "timer_boundary")
    instance_id = start(client, users, "timer_boundary")
    cancelled = client.post(f"/api/v1/process-instances/{instance_id}/cancel", headers=users["ivan"], json={})
    assert cancelled.status_code == 200, cancelled.json
    assert waiting_timers(context, instance_id) == []
    move_to(context, DAY)
    assert fire(context) == 0
    assert fired_elements(context, instance_id) == []


def test_intermediate_duration_then_date(client, users, context):
    deploy_fixture(client, users, "timer_intermediate")
    instance_id = start(client, users, "timer_intermediate")
    move_to(context, DAY - SECOND)
    assert fire(context) == 0
    move_to(context, DAY)
    assert fire(context) == 1
    assert [(e, utc(d)) for e, d in waiting_timers(context, instance_id)] == [
        ("wait_date", START + 5 * DAY)]  # timeDate 2026-01-10T09:00:00Z
    move_to(context, 5 * DAY - SECOND)
    assert fire(context) == 0
    assert open_tasks(context, instance_id) == []
    move_to(context, 5 * DAY)
    assert fire(context) == 1
    assert open_tasks(context, instance_id) == ["follow_up"]
    assert fired_elements(context, instance_id) == ["wait_day", "wait_date"]


def test_firing_twice_fires_once(client, users, context):
    deploy_fixture(client, users, "timer_intermediate")
    instance_id = start(client, users, "timer_intermediate")
    move_to(context, DAY)
    assert fire(context) == 1
    assert fire(context) == 0
    assert fired_elements(context, instance_id) == ["wait_day"]


def test_a_worker_tick_keeps_watching_and_fires_a_timer_that_falls_due_during_it(client, users, context):
    """The Celery tick runs `fire_due_timers_for`: a timer falling due in the middle of the tick is picked up at
    the next poll, not at the next tick, and the tick ends once its time is spent."""
    import time

    deploy_fixture(client, users, "timer_intermediate")
    instance_id = start(client, users, "timer_intermediate")
    move_to(context, DAY - SECOND)
    outcome = {}

    def tick():
        began = time.monotonic()
        outcome["fired"] = timers.fire_due_timers_for(context.uow, seconds=1.5, poll_interval=0.05)
        outcome["seconds"] = time.monotonic() - began

    watcher = threading.Thread(target=tick)
    watcher.start()
    time.sleep(0.3)
    assert fired_elements(context, instance_id) == []  # not due yet: the tick is polling
    move_to(context, DAY)
    deadline = time.monotonic() + 1.0
    while not fired_elements(context, instance_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fired_elements(context, instance_id) == ["wait_day"]  # picked up within the tick
    watcher.join(timeout=10)
    assert outcome["fired"] == 1
    assert 1.5 <= outcome["seconds"] < 5


def test_late_firing_records_the_lag(client, users, context):
    deploy_fixture(client, users, "timer_intermediate")
    instance_id = start(client, users, "timer_intermediate")
    move_to(context, DAY + 90 * SECOND)
    assert fire(context) == 1
    [fired] = history(context, instance_id, "timer.fired")
    assert fired.data["lag_seconds"] == 90
    assert fired.data["fired_at"] == (START + DAY + 90 * SECOND).isoformat()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_concurrent_schedulers_fire_each_timer_once(client, users, context):
    deploy_fixture(client, users, "timer_intermediate")
    instance_ids = [start(client, users, "timer_intermediate") for _ in range(40)]
    move_to(context, DAY)
    barrier = threading.Barrier(2)
    counts, errors = [], []

    def scheduler():
        try:
            barrier.wait()
            total = 0
            while True:
                fired = timers.fire_due_timers(context.uow, limit=7)  # small batches: many overlapping polls
                total += fired
                if fired == 0:
                    break
            counts.append(total)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts.append(fire(context))  # anything skipped as busy is picked up by the next pass
    assert sum(counts) == 40
    for instance_id in instance_ids:
        assert fired_elements(context, instance_id) == ["wait_day"]
        assert [e for e, _ in waiting_timers(context, instance_id)] == ["wait_date"]


# --- timer start events ---------------------------------------------------------------------------------------


def started(context, key: str) -> list[ProcessInstance]:
    with context.uow() as uow:
        return list(uow.session.scalars(select(ProcessInstance).where(ProcessInstance.process_key == key)
                                        .order_by(ProcessInstance.started_at)))


def test_cycle_start_event_creates_one_instance_per_occurrence(client, users, context):
    deploy_fixture(client, users, "timer_start_cycle")  # R3/PT1H, deployed at START
    for hour in (1, 2, 3):
        move_to(context, hour * HOUR - SECOND)
        assert timers.start_scheduled_instances(context.uow) == 0
        move_to(context, hour * HOUR)
        assert timers.start_scheduled_instances(context.uow) == 1
        assert count_instances(context, "timer_start_cycle") == hour
    move_to(context, 10 * HOUR)
    assert timers.start_scheduled_instances(context.uow) == 0
    rows = started(context, "timer_start_cycle")
    assert [utc(i.started_at) for i in rows] == [START + HOUR, START + 2 * HOUR, START + 3 * HOUR]
    assert all(open_tasks(context, i.id) == ["check"] for i in rows)
    assert all(i.started_by == "system" for i in rows)
    first = history(context, rows[0].id, "instance.started")[0]
    assert first.data["trigger"] == "timer" and first.element_id == "start"


def test_date_start_event_creates_one_instance(client, users, context):
    deploy_fixture(client, users, "timer_start_date")  # 2026-01-06T09:00:00Z
    move_to(context, DAY - SECOND)
    assert timers.start_scheduled_instances(context.uow) == 0
    move_to(context, DAY)
    assert timers.start_scheduled_instances(context.uow) == 1
    move_to(context, 30 * DAY)
    assert timers.start_scheduled_instances(context.uow) == 0
    assert count_instances(context, "timer_start_date") == 1


def test_a_new_version_replaces_the_schedule(client, users, context):
    deploy_fixture(client, users, "timer_start_cycle")
    move_to(context, 30 * MINUTE)
    [second] = deploy_fixture(client, users, "timer_start_cycle")
    assert second["version"] == 2
    with context.uow() as uow:
        schedules = list(uow.session.scalars(select(TimerSchedule).order_by(TimerSchedule.id)))
    assert [s.status for s in schedules] == ["replaced", "active"]
    assert utc(schedules[1].next_due_at) == START + 90 * MINUTE  # counted from the new deployment
    move_to(context, HOUR)
    assert timers.start_scheduled_instances(context.uow) == 0  # the old schedule's 10:00 is gone
    move_to(context, 90 * MINUTE)
    assert timers.start_scheduled_instances(context.uow) == 1
    [row] = started(context, "timer_start_cycle")
    with context.uow() as uow:
        from bpm.adapters.orm import ProcessDefinition

        assert uow.session.get(ProcessDefinition, row.definition_id).version == 2
