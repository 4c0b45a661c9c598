"""The Celery app of the production worker and beat processes, configured from Settings in one place.

Reliability choices: a task is acknowledged only after it ran (acks_late) and goes back to the queue when its
worker dies (reject_on_worker_lost); each worker takes one message at a time; publishing waits for the
broker's confirmation. Process timers are rows fired by the periodic `bpm.fire_due_timers`, never Celery
eta/countdown messages.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from celery import Celery
from celery.schedules import crontab
from kombu import Queue

from bpm.config import Settings
from bpm.services.records import time_of_day

DELIVERY_QUEUE = "bpm.deliveries"
SCHEDULING_QUEUE = "bpm.scheduling"
QUEUES = (DELIVERY_QUEUE, SCHEDULING_QUEUE)

ROUTES = {
    "bpm.deliver": {"queue": DELIVERY_QUEUE},
    "bpm.relay_outbox": {"queue": SCHEDULING_QUEUE},
    "bpm.requeue_stuck": {"queue": SCHEDULING_QUEUE},
    "bpm.fire_due_timers": {"queue": SCHEDULING_QUEUE},
    "bpm.run_due_escalations": {"queue": SCHEDULING_QUEUE},
    "bpm.start_scheduled_instances": {"queue": SCHEDULING_QUEUE},
    "bpm.raise_dormant_customer_tasks": {"queue": SCHEDULING_QUEUE},
}

# Periodic ticks expire quickly: a tick that waited in the queue longer than that is dropped, not piled up.
TICK_EXPIRES_SECONDS = 10
BEAT_SCHEDULE = {
    "relay-outbox": ("bpm.relay_outbox", timedelta(seconds=1)),
    "fire-due-timers": ("bpm.fire_due_timers", timedelta(seconds=1)),
    "run-due-escalations": ("bpm.run_due_escalations", timedelta(seconds=2)),
    "start-scheduled-instances": ("bpm.start_scheduled_instances", timedelta(seconds=2)),
    "requeue-stuck-deliveries": ("bpm.requeue_stuck", timedelta(seconds=60)),
}
# A timer tick keeps watching for due timers until shortly before the next tick (so a timer waits at most one
# poll, not one tick); ticks that overlap under load run on the worker's other pool processes, side by side.
TIMER_WATCH_SECONDS = BEAT_SCHEDULE["fire-due-timers"][1].total_seconds() * 0.9
TIMER_POLL_SECONDS = 0.1
# Daily jobs: beat entry -> (task, the Settings field holding its time of day, HH:MM UTC). A daily run may wait
# in the queue for hours (the job is idempotent per customer and day), so it expires only after half a day.
DAILY_SCHEDULE = {
    "dormant-customer-check": ("bpm.raise_dormant_customer_tasks", "dormant_check_at"),
}
DAILY_EXPIRES_SECONDS = 12 * 3600


def daily_beat_schedule(settings: Settings) -> dict:
    entries = {}
    for name, (task, setting) in DAILY_SCHEDULE.items():
        at = time_of_day(getattr(settings, setting))
        entries[name] = {"task": task, "schedule": crontab(hour=at.hour, minute=at.minute),
                         "options": {"expires": DAILY_EXPIRES_SECONDS}}
    return entries


def make_celery(settings: Settings) -> Celery:
    app = Celery("bpm", broker=settings.broker_url or "memory://", include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue=DELIVERY_QUEUE,
        task_routes=ROUTES,
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        timezone="UTC",
        beat_schedule={name: {"task": task, "schedule": every, "options": {"expires": TICK_EXPIRES_SECONDS}}
                       for name, (task, every) in BEAT_SCHEDULE.items()} | daily_beat_schedule(settings),
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
    )
    return app


celery_app = make_celery(Settings.from_env())


def run_command(kind: str, extra: list[str]) -> int:
    """`bpm worker` / `bpm beat`: Celery's own commands with our app and queues."""
    settings = Settings.from_env()
    if not settings.broker_url:
        print(f"bpm {kind}: set BPM_BROKER_URL (e.g. amqp://guest:guest@127.0.0.1:5672//); without a broker "
              "`bpm serve` runs the embedded worker and scheduler itself", file=sys.stderr)
        return 2
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    argv = [kind, "--loglevel=INFO"]
    if kind == "worker":
        argv += ["--queues", ",".join(QUEUES)]
    celery_app.start(argv + list(extra or []))
    return 0
