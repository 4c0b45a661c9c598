"""The scheduler side of timers: fire due timer rows, and start instances from timer start events.

Timer rows are written by the projection (bpm.services.projection) in the transaction that makes an instance
wait. A scheduler pass fires the due rows one transaction each: the transaction claims the oldest due row with
FOR UPDATE SKIP LOCKED through ix_timers_due and locks its instance row the same way (PostgreSQL; SQLite
serializes writers with BEGIN IMMEDIATE), so any number of schedulers can run side by side, each taking other
timers, and a timer fires once in effect. A failure rolls the step back, opens an incident and backs the
timer off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import defer, sessionmaker

from bpm import engine, expressions
from bpm.adapters.orm import ProcessDefinition, ProcessInstance, Timer
from bpm.adapters.orm_timers import TimerSchedule
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import DeploymentRejected
from bpm.services import definitions, incidents
from bpm.services.instances import _scripts_allowed
from bpm.services.projection import apply_snapshot, record

SYSTEM = "system"
FIRED = "fired"
SKIPPED, FAILED = incidents.SKIPPED, incidents.FAILED

UowFactory = Callable[[], UnitOfWork]


# --- firing waiting timers ---


def fire_due_timers(uow_factory: UowFactory, limit: int = 500) -> int:
    """One scheduler pass: fire up to `limit` due timers, oldest first, each in its own transaction.

    There is no separate poll: each transaction claims the oldest due timer nobody holds (one `FOR UPDATE SKIP
    LOCKED ... LIMIT 1` query on ix_timers_due), fires it and commits, until nothing is due. Schedulers running
    side by side therefore take different timers instead of walking the same list. The pass keeps one
    database connection (no pool checkout, ping and reset per timer).

    Returns how many timer occurrences fired (a cycle that was behind counts each occurrence it caught up).
    Safe to call from several processes or threads at once.
    """
    fired = 0
    passed_over: set[int] = set()  # claimed but not fired this pass (a race): the next pass tries again
    with _one_connection(uow_factory) as (pinned, connection):
        statement = _claim_next_statement()
        for _ in range(limit):
            outcome, occurrences, timer_id = _fire_next(pinned, uow_factory, statement, passed_over)
            if timer_id is None:
                break  # nothing (else) is due
            fired += occurrences
            if outcome != FIRED:
                passed_over.add(timer_id)
            if connection is not None and connection.invalidated:
                break  # the database went away: the next pass starts on a fresh connection
    return fired


def fire_due_timers_for(uow_factory: UowFactory, seconds: float, poll_interval: float = 0.1,
                        limit: int = 500) -> int:
    """Fire due timers for about `seconds` of wall time: pass after pass while timers are due, and a poll every
    `poll_interval` seconds while none is, so a timer waits at most one poll interval, not one scheduler tick.

    The worker's periodic tick runs this with `seconds` just under the tick interval: one tick keeps watching
    until the next arrives. A pass that started before the time ran out finishes (at most `limit` firings).
    Returns how many timer occurrences fired."""
    deadline = time.monotonic() + seconds
    fired = 0
    while True:
        fired_now = fire_due_timers(uow_factory, limit)
        fired += fired_now
        left = deadline - time.monotonic()
        if left <= 0:
            return fired
        if not fired_now:
            time.sleep(min(poll_interval, left))


def due_timer_query(now: datetime, limit: int):
    """The poll: waiting timers due by `now` whose job is not backing off after a failure (ix_timers_due)."""
    return (select(Timer.id).where(Timer.status == "waiting", Timer.due_at <= now,
                                   incidents.not_held_back("timer", Timer.id, now))
            .order_by(Timer.due_at).limit(limit))


def due_timer_ids(uow_factory: UowFactory, limit: int) -> list[int]:
    uow = uow_factory()
    with uow:
        return list(uow.session.scalars(due_timer_query(uow.clock.now(), limit)))


def _claim_statement(where):
    """Timer, its instance and its definition (without its large texts: the parsed spec is cached per version)
    in one statement that locks the timer and the instance; rows another scheduler holds are skipped."""
    return (select(Timer, ProcessInstance, ProcessDefinition)
            .join(ProcessInstance, ProcessInstance.id == Timer.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
            .options(defer(ProcessDefinition.bpmn_xml), defer(ProcessDefinition.spec_json))
            .where(Timer.status == "waiting", Timer.due_at <= bindparam("now", type_=Timer.due_at.type), *where)
            .with_for_update(skip_locked=True, of=[Timer, ProcessInstance]))


def _claim_next_statement():
    """The oldest due timer that is not backing off, not passed over in this pass and not held by another
    scheduler. Built once per pass; the values travel as parameters."""
    now = bindparam("now", type_=Timer.due_at.type)
    return (_claim_statement([incidents.not_held_back("timer", Timer.id, now),
                              Timer.id.not_in(bindparam("passed_over", expanding=True))])
            .order_by(Timer.due_at).limit(1))


@contextmanager
def _one_connection(uow_factory: UowFactory):
    """A factory of units of work whose sessions all use one connection (each still its own transaction)."""
    probe = uow_factory()
    maker = getattr(probe, "session_factory", None)
    # a sessionmaker's engine, or that of bpm.adapters.kept_connections.WritingSessions
    bind = getattr(maker, "engine", None) or (getattr(maker, "kw", {}).get("bind") if maker is not None else None)
    if not isinstance(bind, Engine):
        yield uow_factory, None
        return
    with bind.connect() as connection:
        sessions = sessionmaker(bind=connection, expire_on_commit=False, autoflush=False)
        yield (lambda: UnitOfWork(sessions, probe.clock, probe.settings)), connection


def _fire_next(pinned: UowFactory, uow_factory: UowFactory, statement,
               passed_over: set[int]) -> tuple[str, int, int | None]:
    """Claim and fire the next due timer in a transaction of its own: (outcome, occurrences, timer id or None
    when nothing was due)."""
    job = incidents.Job("timer", "")
    status, result = incidents.run_job(job, pinned(), lambda uow: _claim_and_fire(uow, statement, passed_over, job),
                                       uow_factory)
    if status == incidents.DONE:
        return result
    return status, 0, (int(job.id) if job.id else None)


def _claim_and_fire(uow: UnitOfWork, statement, passed_over: set[int],
                    job: incidents.Job) -> tuple[str, int, int | None]:
    claimed = uow.session.execute(statement, {"now": uow.clock.now(), "passed_over": sorted(passed_over)}).first()
    if claimed is None:
        return SKIPPED, 0, None
    occurrences = _fire_claimed(uow, claimed, job)
    _commit_if_changed(uow, occurrences)
    return (FIRED if occurrences else SKIPPED), occurrences, int(job.id)


def fire_timer(uow_factory: UowFactory, timer_id: int) -> tuple[str, int]:
    """Fire one timer row if it is still waiting and due: (FIRED | SKIPPED (gone, not due, busy) | FAILED,
    occurrences fired)."""
    job = incidents.Job("timer", str(timer_id))
    status, occurrences = incidents.run_job(job, uow_factory(), lambda uow: _fire_and_commit(uow, timer_id, job),
                                            uow_factory)
    if status != incidents.DONE:
        return status, 0
    return (FIRED if occurrences else SKIPPED), occurrences


def _fire_and_commit(uow: UnitOfWork, timer_id: int, job: incidents.Job) -> int:
    occurrences = _fire_in_transaction(uow, timer_id, job)
    _commit_if_changed(uow, occurrences)
    return occurrences


def _commit_if_changed(uow: UnitOfWork, occurrences: int) -> None:
    """Commit a firing, or the clean-up of a timer that had nothing left to fire (a cancelled branch)."""
    if occurrences or uow.session.dirty or uow.session.deleted:
        uow.commit()


def _fire_in_transaction(uow: UnitOfWork, timer_id: int, job: incidents.Job) -> int:
    claimed = uow.session.execute(_claim_statement([Timer.id == timer_id]), {"now": uow.clock.now()}).first()
    if claimed is None:
        return 0
    return _fire_claimed(uow, claimed, job)


def _fire_claimed(uow: UnitOfWork, claimed, job: incidents.Job) -> int:
    """Fire a claimed timer in the caller's transaction; returns the occurrences fired (0: nothing to fire)."""
    now = uow.clock.now()
    timer, instance, definition = claimed
    job.id = str(timer.id)
    job.instance_id, job.process_key, job.element_id = instance.id, instance.process_key, timer.element_id
    job.element_name = _element_name(definition, timer.element_id)
    if instance.status != "running":
        uow.session.delete(timer)
        return 0
    workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).restore(instance.state_json)
    fired = engine.fire_due_timers(workflow, now)
    snap = engine.snapshot(workflow)
    for done in fired:
        _record_fired(uow, instance, definition, done, now)
    had_incident = instance.incident is not None
    apply_snapshot(uow, instance, definition, snap, None)
    if had_incident:  # every open incident marks its instance: without a marker there is nothing to resolve
        incidents.resolve_job(uow, "timer", job.id, "the timer fired")
    return len(fired)


def _record_fired(uow, instance, definition, timer: engine.WaitingTimer, now: datetime) -> None:
    due = utc(timer.due_at)
    record(uow, instance.id, "timer.fired", SYSTEM, element_id=timer.element_id,
           element_name=_element_name(definition, timer.element_id),
           data={"kind": timer.kind, "due_at": due.isoformat(), "fired_at": now.isoformat(),
                 "lag_seconds": round((now - due).total_seconds(), 6)})


def _element_name(definition: ProcessDefinition, element_id: str | None) -> str | None:
    return definitions.model_of(definition).get("elements", {}).get(element_id or "", {}).get("name")


@incidents.retries("timer")
def retry_timer(uow_factory: UowFactory, job_id: str) -> bool:
    """Manual retry: fire the timer now, whatever its back-off. True when it fired or has nothing to fire."""
    outcome, _ = fire_timer(uow_factory, int(job_id))
    if outcome == FIRED:
        return True
    if outcome == FAILED:
        return False
    uow = uow_factory()
    with uow:
        return uow.session.get(Timer, int(job_id)) is None  # gone: the branch moved on, nothing to retry


# --- timer start events: schedules kept per deployed version ---


def schedule_timer_starts(uow: UnitOfWork, rows: list[ProcessDefinition], _command=None) -> None:
    """Deploy hook: the new version's timer start events replace the schedules of older versions."""
    now = uow.clock.now()
    for definition in rows:
        starts = _timer_starts_of(definition)
        older = update(TimerSchedule).where(TimerSchedule.process_key == definition.key,
                                            TimerSchedule.status == "active")
        uow.session.execute(older.values(status="replaced"))
        for start in starts:
            uow.session.add(_new_schedule(definition, start, now))


def _timer_starts_of(definition: ProcessDefinition) -> list[engine.TimerStart]:
    try:
        return engine.timer_start_events(definition.bpmn_xml, definition.key)
    except expressions.ExpressionError as error:
        raise DeploymentRejected(f"process '{definition.key}': timer start event: {error}",
                                 [{"code": "expression", "message": str(error), "element_type": "startEvent"}]
                                 ) from error


def _new_schedule(definition: ProcessDefinition, start: engine.TimerStart, now: datetime) -> TimerSchedule:
    try:
        occurrence = engine.first_occurrence(start, now)
    except expressions.ExpressionError as error:
        raise DeploymentRejected(
            f"timer start event '{start.element_id}' of '{definition.key}': {error} (a timer start event "
            "must be a literal date, duration or cycle: it is evaluated without process variables)",
            [{"code": "expression", "message": str(error), "element_id": start.element_id,
              "element_type": "startEvent"}]) from error
    return TimerSchedule(process_key=definition.key, definition_id=definition.id, element_id=start.element_id,
                         kind=start.kind, expression=start.expression, next_due_at=occurrence.due_at,
                         remaining=occurrence.remaining, interval_seconds=occurrence.interval_seconds,
                         status="active", started_count=0, created_at=now)


definitions.DEPLOY_HOOKS.append(schedule_timer_starts)


def start_scheduled_instances(uow_factory: UowFactory, limit: int = 100) -> int:
    """One scheduler pass over due timer start schedules: each due occurrence starts one new instance."""
    uow = uow_factory()
    with uow:
        now = uow.clock.now()
        ids = list(uow.session.scalars(
            select(TimerSchedule.id).where(TimerSchedule.status == "active", TimerSchedule.next_due_at <= now,
                                           incidents.not_held_back("timer_start", TimerSchedule.id, now))
            .order_by(TimerSchedule.next_due_at).limit(limit)))
    return sum(1 for schedule_id in ids if start_scheduled(uow_factory, schedule_id) == FIRED)


def start_scheduled(uow_factory: UowFactory, schedule_id: int) -> str:
    job = incidents.Job("timer_start", str(schedule_id))
    status, outcome = incidents.run_job(job, uow_factory(), lambda uow: _start_and_commit(uow, schedule_id, job),
                                        uow_factory)
    return outcome if status == incidents.DONE else status


def _start_and_commit(uow: UnitOfWork, schedule_id: int, job: incidents.Job) -> str:
    outcome = _start_in_transaction(uow, schedule_id, job)
    if outcome == FIRED:
        uow.commit()
    return outcome


def _start_in_transaction(uow: UnitOfWork, schedule_id: int, job: incidents.Job) -> str:
    import uuid

    now = uow.clock.now()
    schedule = uow.session.scalar(select(TimerSchedule).where(
        TimerSchedule.id == schedule_id, TimerSchedule.status == "active", TimerSchedule.next_due_at <= now)
        .with_for_update(skip_locked=True))
    if schedule is None:
        return SKIPPED
    definition = uow.session.get(ProcessDefinition, schedule.definition_id)
    job.process_key, job.element_id = schedule.process_key, schedule.element_id
    job.element_name = _element_name(definition, schedule.element_id)
    due = utc(schedule.next_due_at)
    workflow = definitions.runtime_for(definition, _scripts_allowed(uow)).new_workflow()
    engine.start_by_timer(workflow, schedule.element_id, {}, now)
    snap = engine.snapshot(workflow)
    instance = ProcessInstance(id=str(uuid.uuid4()), definition_id=definition.id, process_key=definition.key,
                               status="running", state_json=snap.state_json, started_by=SYSTEM,
                               started_at=now)
    uow.session.add(instance)
    record(uow, instance.id, "instance.started", SYSTEM, element_id=schedule.element_id,
           element_name=job.element_name,
           data={"process_key": definition.key, "version": definition.version, "trigger": "timer",
                 "schedule_id": schedule.id, "due_at": due.isoformat(),
                 "lag_seconds": round((now - due).total_seconds(), 6)})
    uow.publish(events.InstanceStarted(instance.id, definition.key, None, SYSTEM))
    apply_snapshot(uow, instance, definition, snap, SYSTEM, new=True)
    _advance(schedule, due, now)
    incidents.resolve_job(uow, "timer_start", job.id, "the instance started")
    return FIRED


def _advance(schedule: TimerSchedule, due: datetime, now: datetime) -> None:
    schedule.started_count += 1
    schedule.last_started_at = now
    if schedule.remaining > 0:
        schedule.remaining -= 1
    if schedule.remaining == 0 or not schedule.interval_seconds:
        schedule.status, schedule.next_due_at = "done", None
        return
    schedule.next_due_at = due + timedelta(seconds=schedule.interval_seconds)


@incidents.retries("timer_start")
def retry_schedule(uow_factory: UowFactory, job_id: str) -> bool:
    outcome = start_scheduled(uow_factory, int(job_id))
    if outcome == FIRED:
        return True
    if outcome == FAILED:
        return False
    uow = uow_factory()
    with uow:
        schedule = uow.session.get(TimerSchedule, int(job_id))
        return schedule is None or schedule.status != "active"


# --- one synchronous pass of every time-driven job (manual clock, embedded loop) ---


MAX_CATCH_UP_ROUNDS = 1000


def run_due_work(uow_factory: UowFactory, max_rounds: int = MAX_CATCH_UP_ROUNDS) -> dict[str, int]:
    """Run timer starts, timers and escalations until nothing more is due (a cycle far behind catches up one
    occurrence per round). Returns how many of each ran."""
    from bpm.services import escalation  # late: escalation registers handlers on import

    totals = {"instances_started": 0, "timers_fired": 0, "escalations": 0}
    for _ in range(max_rounds):
        ran = {"instances_started": start_scheduled_instances(uow_factory),
               "timers_fired": fire_due_timers(uow_factory),
               "escalations": escalation.run_due_escalations(uow_factory)}
        for name, count in ran.items():
            totals[name] += count
        if not any(ran.values()):
            break
    return totals
