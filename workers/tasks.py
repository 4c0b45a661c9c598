"""Celery tasks: each one builds the unit of work from Settings and calls one bpm service function.

Optional services (timers, escalations, scheduled starts) are looked up by name, so a worker runs whatever
this build of bpm provides.
"""

from __future__ import annotations

import importlib
import logging

from bpm.services import outbox, records
from workers import context
from workers.celery_app import DELIVERY_QUEUE, TIMER_POLL_SECONDS, TIMER_WATCH_SECONDS, celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="bpm.deliver")
def deliver(outbox_id: int) -> str:
    worker = context.current()
    return outbox.deliver(outbox_id, worker.uow, worker.channels)


@celery_app.task(name="bpm.relay_outbox")
def relay_outbox() -> int:
    return outbox.relay_outbox(context.current().uow, publish_delivery)


@celery_app.task(name="bpm.requeue_stuck")
def requeue_stuck() -> int:
    return outbox.requeue_stuck(context.current().uow)


@celery_app.task(name="bpm.fire_due_timers")
def fire_due_timers() -> int:
    """One beat tick: fire due timers and keep polling (every TIMER_POLL_SECONDS) until the next tick is due."""
    return call_optional("bpm.services.timers", "fire_due_timers_for", seconds=TIMER_WATCH_SECONDS,
                         poll_interval=TIMER_POLL_SECONDS, limit=500)


@celery_app.task(name="bpm.run_due_escalations")
def run_due_escalations() -> int:
    return call_optional("bpm.services.escalation", "run_due_escalations", limit=500)


@celery_app.task(name="bpm.start_scheduled_instances")
def start_scheduled_instances() -> int:
    return call_optional("bpm.services.timers", "start_scheduled_instances", limit=100)


@celery_app.task(name="bpm.raise_dormant_customer_tasks")
def raise_dormant_customer_tasks() -> int:
    """The daily dormant-customer check (beat entry `dormant-customer-check`, at BPM_DORMANT_CHECK_AT)."""
    return records.raise_dormant_customer_tasks(context.current().uow)


def publish_delivery(outbox_id: int, _kind: str) -> None:
    # retry=False: when the broker is down, fail now and leave the row pending for the next relay tick.
    deliver.apply_async((outbox_id,), queue=DELIVERY_QUEUE, retry=False)


def optional_service(module_name: str, function_name: str):
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, function_name, None)


def call_optional(module_name: str, function_name: str, **kwargs) -> int:
    function = optional_service(module_name, function_name)
    if function is None:
        return 0
    return function(context.current().uow, **kwargs) or 0
