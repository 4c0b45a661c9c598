"""The Celery app's reliability settings, task names, queues and beat schedule, in one place."""

from __future__ import annotations

from datetime import timedelta

from api import cli
from bpm.config import Settings
from workers import celery_app as module
from workers import tasks


def test_tasks_are_acknowledged_after_they_ran_and_requeued_when_a_worker_dies():
    conf = module.make_celery(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//")).conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert conf.broker_transport_options["confirm_publish"] is True


def test_every_task_is_namespaced_routed_to_a_named_queue_and_scheduled_without_countdowns():
    names = {name for name in module.celery_app.tasks if name.startswith("bpm.")}
    assert names == set(module.ROUTES)
    assert {route["queue"] for route in module.ROUTES.values()} <= set(module.QUEUES)
    schedule = module.celery_app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} <= names - {"bpm.deliver"}
    assert schedule["fire-due-timers"]["schedule"] <= timedelta(seconds=2)
    assert schedule["relay-outbox"]["schedule"] <= timedelta(seconds=2)
    assert all(set(entry["options"]) == {"expires"} for entry in schedule.values())  # no eta, no countdown


def test_the_relay_publishes_one_deliver_task_per_message(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, **options: sent.append((args, options)))
    tasks.publish_delivery(42, "email")
    assert sent == [((42,), {"queue": module.DELIVERY_QUEUE, "retry": False})]


def test_bpm_worker_without_a_broker_explains_the_embedded_mode(monkeypatch, capsys):
    monkeypatch.delenv("BPM_BROKER_URL", raising=False)
    assert cli.main(["worker", "--concurrency=2"]) == 2
    assert "BPM_BROKER_URL" in capsys.readouterr().err


def test_optional_services_that_do_not_exist_are_skipped():
    assert tasks.optional_service("bpm.services.no_such_module", "run") is None
    assert tasks.call_optional("bpm.services.no_such_module", "run", limit=1) == 0


def test_a_timer_tick_watches_until_shortly_before_the_next_one(monkeypatch):
    """The tick calls the watching pass with its budget under the tick interval, polling well inside it."""
    calls = []
    monkeypatch.setattr(tasks, "call_optional", lambda module_name, name, **kwargs: calls.append((name, kwargs)) or 0)
    tasks.fire_due_timers()
    [(name, kwargs)] = calls
    tick = module.celery_app.conf.beat_schedule["fire-due-timers"]["schedule"].total_seconds()
    assert name == "fire_due_timers_for"
    assert 0.5 * tick <= kwargs["seconds"] < tick
    assert kwargs["poll_interval"] <= 0.2 * tick


def test_the_engine_does_not_log_every_task_state_change():
    """SpiffWorkflow logs each state change at INFO; a worker running at INFO must not pay for that."""
    import logging

    from bpm import engine  # noqa: F401 - importing the adapter configures the engine's loggers

    assert logging.getLogger("spiff.task").getEffectiveLevel() >= logging.WARNING
