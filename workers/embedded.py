"""Embedded mode: when no broker is configured, the API process itself fires timers, runs escalations,
starts scheduled instances and delivers the outbox, in two daemon threads.

The relay "publishes" to an in-process queue that a delivery thread drains, so a slow SMTP server never
delays a timer. The rows are the same as in production: a message published but lost with the process is
re-published by the sweeper, and delivery stays idempotent.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import date

from bpm.clock import utc
from bpm.services import notifications, outbox, records
from workers.tasks import optional_service

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
SWEEP_EVERY_SECONDS = 60.0
SCHEDULED = (
    ("bpm.services.timers", "fire_due_timers", {"limit": 500}),
    ("bpm.services.escalation", "run_due_escalations", {"limit": 500}),
    ("bpm.services.timers", "start_scheduled_instances", {"limit": 100}),
)
# Daily jobs: name, function, the Settings field holding its time of day (HH:MM, UTC). Each runs on the first
# tick at or after that time by the server's clock (a manual clock too), once per day; the jobs themselves are
# idempotent, so a restart or a Celery beat running the same job that day raises nothing twice.
DAILY = (("dormant_customer_check", records.raise_dormant_customer_tasks, "dormant_check_at"),)
_daily_last_run: dict[str, date] = {}

_started = threading.Event()
_start_lock = threading.Lock()


def start(context, tick_seconds: float = TICK_SECONDS) -> bool:
    """Start the loops once per process; returns False when they already run."""
    with _start_lock:
        if _started.is_set():
            return False
        _started.set()
    deliveries: queue.Queue[int] = queue.Queue()
    channels = notifications.build_channels(context.settings)
    _daemon("bpm-scheduler", lambda: scheduler_loop(context, deliveries, tick_seconds))
    _daemon("bpm-delivery", lambda: delivery_loop(context, deliveries, channels))
    log.info("embedded worker and scheduler started")
    return True


def _daemon(name: str, target: Callable) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


def scheduler_loop(context, deliveries: queue.Queue, tick_seconds: float) -> None:
    last_sweep = time.monotonic()
    while True:
        run_tick(context, deliveries)
        if time.monotonic() - last_sweep >= SWEEP_EVERY_SECONDS:
            _guarded("requeue_stuck", outbox.requeue_stuck, context.uow)
            last_sweep = time.monotonic()
        time.sleep(tick_seconds)


def run_tick(context, deliveries: queue.Queue) -> None:
    """One scheduler round: due timers, escalations, scheduled starts, daily jobs, then relay the outbox."""
    for module_name, function_name, kwargs in SCHEDULED:
        function = optional_service(module_name, function_name)
        if function is not None:
            _guarded(function_name, function, context.uow, **kwargs)
    run_daily_jobs(context)
    _guarded("relay_outbox", outbox.relay_outbox, context.uow,
             lambda outbox_id, _kind: deliveries.put(outbox_id))


def run_daily_jobs(context) -> None:
    now = context.clock.now()
    for name, function, setting in DAILY:
        at = _guarded(f"{name} schedule", records.time_of_day, getattr(context.settings, setting))
        if at is None or not records.daily_run_due(now, at, _daily_last_run.get(name)):
            continue
        if _guarded(name, function, context.uow) is not None:
            _daily_last_run[name] = utc(now).date()


def delivery_loop(context, deliveries: queue.Queue, channels) -> None:
    while True:
        outbox_id = deliveries.get()
        _guarded("deliver", outbox.deliver, outbox_id, context.uow, channels)


def _guarded(name: str, function: Callable, *args, **kwargs):
    # One failing round (a database hiccup, a bug in one service) must not stop the loop for good.
    try:
        return function(*args, **kwargs)
    except Exception:  # noqa: BLE001
        log.exception("embedded %s failed; retrying on the next tick", name)
        return None
