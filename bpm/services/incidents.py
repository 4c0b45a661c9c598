"""Incidents: a background job or engine step that failed is recorded, backed off, shown and retried.

The failed step itself is rolled back (the instance keeps its state and the job its row); this module then
writes, in a transaction of its own, an `incidents` row and the instance's `incident` summary. Automatic
retries back off (BACKOFF) and stop after the last step: from then on only a retry over the API runs the
job again. A later success resolves the incident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import String, and_, cast, exists, or_, select
from sqlalchemy.exc import OperationalError

from bpm.adapters.orm import ProcessInstance
from bpm.adapters.orm_timers import Incident
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain import events
from bpm.domain.errors import ConcurrencyConflict, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services.projection import record

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a scheduler's job did: ran (DONE, with the job's own result), left for the next pass, or failed.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"

# Seconds to wait before the automatic retry after the 1st, 2nd, 3rd failure; after that, manual retry only.
BACKOFF = (60, 300, 1800)
MAX_MESSAGE = 2000

# job kind -> f(uow_factory, job_id) -> bool (True: the job ran successfully or has nothing left to do)
RETRIES: dict[str, Callable[[Callable[[], UnitOfWork], str], bool]] = {}


def retries(job_kind: str) -> Callable:
    """Register how a job kind is run again by POST /incidents/{id}/retry."""
    def register(function: Callable) -> Callable:
        RETRIES[job_kind] = function
        return function

    return register


@dataclass
class Job:
    """What failed: filled in while the job runs, so the failure can be described after the rollback."""

    kind: str
    id: str
    instance_id: str | None = None
    process_key: str | None = None
    element_id: str | None = None
    element_name: str | None = None


def run_job(job: Job, uow: UnitOfWork, work: Callable[[UnitOfWork], T],
            record_with: Callable[[], UnitOfWork]) -> tuple[str, T | None]:
    """Run `work(uow)` (it commits) in the transaction of `uow`, with every scheduler's policy for failures.

    (DONE, result) when it ran. A race (another writer changed the instance, a lock or serialization error)
    is (SKIPPED, None): the row stays and the next pass tries again, no incident. Any other error is
    (FAILED, None) after the job's incident was opened or updated in a transaction of its own (`record_with`);
    a job that failed before it knew which row it was working on re-raises, as there is nothing to record."""
    try:
        with uow:
            return DONE, work(uow)
    except (ConcurrencyConflict, OperationalError) as error:
        log.info("%s %s not run this pass: %s", job.kind, job.id or "?", str(error).split("\n")[0])
        return SKIPPED, None
    except Exception as error:  # noqa: BLE001 - a failing job becomes an incident, never a lost row
        if not job.id:
            raise
        log.warning("%s %s failed: %s", job.kind, job.id, error)
        record_failure(record_with, job, error)
        return FAILED, None


def describe_error(error: BaseException) -> str:
    message = str(error).strip() or type(error).__name__
    return message[:MAX_MESSAGE]


def record_failure(uow_factory: Callable[[], UnitOfWork], job: Job, error: BaseException) -> Incident:
    """Open (or update) the incident of `job` in a transaction of its own; back off its next automatic try."""
    uow = uow_factory()
    with uow:
        now = uow.clock.now()
        incident = _open_or_count_again(uow, job, now)
        # The element that failed (a gateway after the timer ...) is more useful than the job's own element.
        if getattr(error, "element_id", None):
            incident.element_id, incident.element_name = error.element_id, getattr(error, "element_name", None)
        else:
            incident.element_id, incident.element_name = job.element_id, job.element_name
        incident.message = describe_error(error)
        incident.last_failed_at = now
        step = incident.retries
        incident.next_attempt_at = now + timedelta(seconds=BACKOFF[step]) if step < len(BACKOFF) else None
        uow.session.flush()
        _mark_instance(uow, incident, now)
        if incident.retries == 0:
            uow.publish(events.IncidentOpened(incident.id, incident.instance_id, incident.process_key,
                                              incident.element_id, incident.job_kind, incident.message))
        uow.commit()
        return incident


def _open_or_count_again(uow: UnitOfWork, job: Job, now) -> Incident:
    """The job's open incident with one more failure counted, or a new one (retries 0) added to the session."""
    incident = open_incident(uow, job.kind, job.id)
    if incident is None:
        incident = Incident(instance_id=job.instance_id, process_key=job.process_key, job_kind=job.kind,
                            job_id=job.id, retries=0, created_at=now)
        uow.session.add(incident)
    else:
        incident.retries += 1
    return incident


def open_in_transaction(uow: UnitOfWork, job: Job, message: str, *, announce: bool = True) -> Incident:
    """Open (or update) the incident of `job` inside the caller's transaction, for jobs that keep their own
    retry schedule (outbox deliveries): no automatic retry from here, only POST /incidents/{id}/retry.

    The instance named by the job is not marked: the instance itself is not stuck."""
    now = uow.clock.now()
    incident = _open_or_count_again(uow, job, now)
    incident.element_id, incident.element_name = job.element_id, job.element_name
    incident.message = message[:MAX_MESSAGE]
    incident.last_failed_at, incident.next_attempt_at = now, None
    uow.session.flush()
    if incident.retries == 0 and announce:
        uow.publish(events.IncidentOpened(incident.id, incident.instance_id, incident.process_key,
                                          incident.element_id, incident.job_kind, incident.message))
    return incident


def _mark_instance(uow: UnitOfWork, incident: Incident, now) -> None:
    if not incident.instance_id:
        return
    instance = uow.session.get(ProcessInstance, incident.instance_id)
    if instance is None:
        return
    instance.incident = {"incident_id": incident.id, "job_kind": incident.job_kind, "job_id": incident.job_id,
                         "element_id": incident.element_id, "element_name": incident.element_name,
                         "error": incident.message, "at": now.isoformat(), "retries": incident.retries}
    if incident.retries == 0:
        record(uow, instance.id, "incident.opened", None, element_id=incident.element_id,
               element_name=incident.element_name,
               data={"incident_id": incident.id, "job_kind": incident.job_kind, "error": incident.message})


def open_incident(uow: UnitOfWork, job_kind: str, job_id: str) -> Incident | None:
    return uow.session.scalar(select(Incident).where(Incident.job_kind == job_kind, Incident.job_id == job_id,
                                                     Incident.resolved_at.is_(None)).limit(1))


def resolve_job(uow: UnitOfWork, job_kind: str, job_id: str, resolution: str,
                actor: str | None = None) -> None:
    """Inside the successful job's transaction: close its open incident and clear the instance's marker."""
    incident = open_incident(uow, job_kind, job_id)
    if incident is None:
        return
    now = uow.clock.now()
    incident.resolved_at, incident.resolved_by, incident.resolution = now, actor, resolution
    incident.next_attempt_at = None
    if incident.instance_id:
        instance = uow.session.get(ProcessInstance, incident.instance_id)
        if instance is not None and (instance.incident or {}).get("incident_id") == incident.id:
            instance.incident = None
        record(uow, incident.instance_id, "incident.resolved", actor, element_id=incident.element_id,
               element_name=incident.element_name,
               data={"incident_id": incident.id, "resolution": resolution})


def not_held_back(job_kind: str, id_column, now) -> Any:
    """SQL condition for schedulers' polls: the job has no open incident that is waiting out its back-off."""
    return ~exists().where(Incident.job_kind == job_kind, Incident.job_id == cast(id_column, String),
                           Incident.resolved_at.is_(None),
                           or_(Incident.next_attempt_at.is_(None), Incident.next_attempt_at > now))


# --- reading and retrying over the API ---


def _require_operator(actor: Actor) -> None:
    if not (actor.is_admin or ("designer" in actor.roles and actor.may("deploy"))):
        raise PermissionDenied("only an admin or a designer may see and retry incidents")


@dataclass
class IncidentQuery:
    status: str | None = "open"  # open | resolved | None (all)
    process_key: str | None = None
    instance_id: str | None = None
    limit: int = 50
    after: int | None = None


def list_incidents(uow: UnitOfWork, actor: Actor, query: IncidentQuery) -> list[Incident]:
    _require_operator(actor)
    if query.status not in (None, "open", "resolved"):
        raise ValidationFailed("unknown status", {"status": ["use open or resolved"]})
    with uow:
        conditions = []
        if query.status == "open":
            conditions.append(Incident.resolved_at.is_(None))
        elif query.status == "resolved":
            conditions.append(Incident.resolved_at.is_not(None))
        if query.process_key:
            conditions.append(Incident.process_key == query.process_key)
        if query.instance_id:
            conditions.append(Incident.instance_id == query.instance_id)
        if query.after:
            conditions.append(Incident.id > query.after)
        statement = select(Incident).where(and_(*conditions)) if conditions else select(Incident)
        return list(uow.session.scalars(statement.order_by(Incident.id).limit(query.limit)))


def get_incident(uow: UnitOfWork, actor: Actor, incident_id: int) -> Incident:
    _require_operator(actor)
    with uow:
        return _get(uow, incident_id)


def _get(uow: UnitOfWork, incident_id: int) -> Incident:
    incident = uow.session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def retry_incident(uow_factory: Callable[[], UnitOfWork], actor: Actor, incident_id: int) -> Incident:
    """Run the failed job again now (ignoring its back-off). Success resolves the incident; a new failure
    updates it (retries + 1, the new error). Returns the incident as it is afterwards."""
    _require_operator(actor)
    uow = uow_factory()
    with uow:
        incident = _get(uow, incident_id)
        job_kind, job_id, resolved = incident.job_kind, incident.job_id, incident.resolved_at is not None
    if resolved:
        return incident
    runner = RETRIES.get(job_kind)
    if runner is None:
        raise ValidationFailed(f"incidents of kind '{job_kind}' cannot be retried here",
                               {"job_kind": [f"no retry for '{job_kind}'"]})
    ran = runner(uow_factory, job_id)
    uow = uow_factory()
    with uow:
        incident = _get(uow, incident_id)
        if ran and incident.resolved_at is None:
            resolve_job(uow, job_kind, job_id, f"retried by {actor.username}: nothing left to run",
                        actor.username)
            uow.commit()
        elif incident.resolved_at is not None and incident.resolved_by is None:
            incident.resolved_by = actor.username
            uow.commit()
        return incident


@retries("delivery")
def _retry_delivery(uow_factory: Callable[[], UnitOfWork], job_id: str) -> bool:
    """A message the outbox gave up on goes back to the outbox (bpm.services.outbox.requeue_failed)."""
    from bpm.services import outbox  # late: outbox opens these incidents

    return outbox.requeue_failed(uow_factory, job_id)
