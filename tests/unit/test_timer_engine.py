"""The engine's timer helpers: firing at the due time (inclusive), one entry per cycle occurrence, timer
start events and ISO durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import bpmn_fixture

from bpm import engine, expressions

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SECOND, MINUTE = timedelta(seconds=1), timedelta(minutes=1)


def started(name: str):
    _, [process] = engine.compile_bpmn(bpmn_fixture(f"{name}.bpmn"))
    workflow = engine.ProcessRuntime(process.spec_json).new_workflow()
    with engine.clock_context(lambda: NOW):
        engine.start(workflow, {})
    return workflow


def test_a_timer_fires_at_its_due_time_not_a_second_before():
    workflow = started("timer_intermediate")
    assert engine.fire_due_timers(workflow, NOW + timedelta(days=1) - SECOND) == []
    [fired] = engine.fire_due_timers(workflow, NOW + timedelta(days=1))
    assert fired.element_id == "wait_day" and fired.due_at == NOW + timedelta(days=1)


def test_a_cycle_far_behind_reports_each_occurrence():
    workflow = started("timer_boundary")
    fired = engine.fire_due_timers(workflow, NOW + 2 * timedelta(hours=1) - SECOND)
    assert [(t.element_id, t.due_at) for t in fired] == [
        ("nudge", NOW + 30 * MINUTE), ("nudge", NOW + 60 * MINUTE), ("nudge", NOW + 90 * MINUTE)]
    assert [t.element_id for t in engine.snapshot(workflow).open_tasks] == ["review"]


def test_timer_start_events_and_their_first_occurrence():
    xml, _ = engine.compile_bpmn(bpmn_fixture("timer_start_cycle.bpmn"))
    [start] = engine.timer_start_events(xml, "timer_start_cycle")
    assert (start.element_id, start.kind, start.expression) == ("start", "timeCycle", '"R3/PT1H"')
    occurrence = engine.first_occurrence(start, NOW)
    assert (occurrence.due_at, occurrence.remaining, occurrence.interval_seconds) == (NOW + 60 * MINUTE, 3, 3600)
    bad = engine.TimerStart("s", None, "timeDate", '"next tuesday"')
    with pytest.raises(expressions.ExpressionError):
        engine.first_occurrence(bad, NOW)


def test_parse_duration_is_calendar_aware_and_strict():
    assert engine.parse_duration("P1M", datetime(2026, 2, 1, tzinfo=UTC)) == timedelta(days=28)
    assert engine.parse_duration("PT4H", NOW) == timedelta(hours=4)
    with pytest.raises(ValueError):
        engine.parse_duration("4 hours", NOW)
