"""Embedded mode: one scheduler tick runs the time services and relays the outbox to the in-process
delivery queue; the loops start once per process."""

from __future__ import annotations

import queue

from bpm.services import notifications, outbox
from workers import embedded


def test_a_tick_runs_every_scheduled_service_then_relays_the_outbox(context, users, monkeypatch):
    called = []

    def recorder(module_name, function_name):
        return lambda uow_factory, limit: called.append((function_name, limit, uow_factory().clock))

    monkeypatch.setattr(embedded, "optional_service", recorder)
    with context.uow() as uow:
        outbox.enqueue(uow, "inapp", {"username": "alice", "title": "提醒"})
        uow.commit()
    deliveries: queue.Queue = queue.Queue()
    embedded.run_tick(context, deliveries)
    assert [(name, limit) for name, limit, _ in called] == [
        ("fire_due_timers", 500), ("run_due_escalations", 500), ("start_scheduled_instances", 100)]
    assert all(clock is context.clock for _, _, clock in called)  # the server's (manual) clock
    outbox_id = deliveries.get_nowait()
    channels = notifications.build_channels(context.settings)
    assert outbox.deliver(outbox_id, context.uow, channels) == "delivered"
    with context.uow() as uow:
        assert notifications.unread_count("alice", uow) == 1


def test_a_failing_service_does_not_stop_the_tick(context, monkeypatch, caplog):
    def broken(_module, _function):
        def fail(*_args, **_kwargs):
            raise RuntimeError("database hiccup")

        return fail

    monkeypatch.setattr(embedded, "optional_service", broken)
    with context.uow() as uow:
        outbox.enqueue(uow, "inapp", {"username": "alice", "title": "still relayed"})
        uow.commit()
    deliveries: queue.Queue = queue.Queue()
    embedded.run_tick(context, deliveries)
    assert deliveries.qsize() == 1
    assert "database hiccup" in caplog.text


def test_the_loops_start_only_once_per_process(context, monkeypatch):
    started = []
    monkeypatch.setattr(embedded, "_daemon", lambda name, _target: started.append(name))
    monkeypatch.setattr(embedded, "_started", type(embedded._started)())
    assert embedded.start(context) is True
    assert embedded.start(context) is False
    assert started == ["bpm-scheduler", "bpm-delivery"]
