"""Timer firing lag on PostgreSQL, and the cost of the due-timer poll with a million pending timers.

    .venv/bin/python benchmarks/timer_lag.py --database-url postgresql+psycopg://127.0.0.1:5432/test

Creates a private database next to the one named in the URL, drops it at the end. Steps:
1. deploy a process `start -> intermediate timer (PT1M) -> end` and start one instance through the services;
2. insert `--pending` future timer rows (due in 1 to 12 days) with plain SQL;
3. insert `--timers` instances copied from the first one, each with its own due time, spread evenly over a
   `--window`-second window starting a few seconds later (state JSON and timer row agree);
4. run ONE firing loop (`bpm.services.timers.fire_due_timers`, what Celery beat / the embedded loop call),
   polling every `--poll-interval` seconds when idle, until all due timers fired (`--loops N` runs N such
   loops in separate processes side by side, as N scheduler workers would);
5. report p50/p99/max lag (due_at -> the firing transaction's clock reading, from the `timer.fired` history
   rows), the firing rate, and EXPLAIN ANALYZE of the poll query with the pending rows in place.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bpm.adapters.db import make_engine, migrate  # noqa: E402
from bpm.adapters.orm import HistoryEntry, load_all_models  # noqa: E402
from bpm.adapters.unit_of_work import UnitOfWork, session_factory  # noqa: E402
from bpm.clock import SystemClock  # noqa: E402
from bpm.config import Settings  # noqa: E402
from bpm.domain.model import Actor  # noqa: E402
from bpm.services import definitions, instances, load_handlers, timers  # noqa: E402

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="bench_timer" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
ADMIN = Actor("bench", frozenset({"admin"}), frozenset())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgresql+psycopg://127.0.0.1:5432/test")
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the timers fall due")
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--lead", type=float, default=5.0, help="seconds between setup end and the first due")
    parser.add_argument("--loops", type=int, default=1, help="firing loops in parallel processes")
    parser.add_argument("--celery", action="store_true",
                        help="fire with the production processes instead: one `bpm worker` (Celery, "
                             "--concurrency as below) and `bpm beat` on RabbitMQ")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes of the --celery worker")
    args = parser.parse_args()
    if make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("this benchmark measures PostgreSQL (FOR UPDATE SKIP LOCKED, the index plan)")
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    name = f"bpm_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        return run(url, args)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, args) -> int:
    migrate(url)
    load_all_models()
    load_handlers()
    engine = make_engine(url)
    sessions = session_factory(engine)
    clock = SystemClock()
    settings = Settings(database_url=url)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, clock, settings)

    definitions.deploy(definitions.DeployBpmn(PROCESS.encode(), "bench.bpmn", "bench"), uow())
    template = instances.start_instance(instances.StartInstance("bench_timer", ADMIN), uow()).instance
    print(f"database {url.rsplit('/', 1)[1]}: deployed, template instance {template.id}")

    started = time.perf_counter()
    insert_pending(engine, template.id, args.pending)
    print(f"{args.pending:,} pending future timers inserted in {time.perf_counter() - started:.1f} s")

    first_due = datetime.now(UTC) + timedelta(seconds=args.lead + args.timers / 20_000)
    started = time.perf_counter()
    insert_due(engine, template, args.timers, first_due, args.window)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE timers"))
    print(f"{args.timers:,} instances due between {first_due:%H:%M:%S} and "
          f"{first_due + timedelta(seconds=args.window):%H:%M:%S} inserted in {time.perf_counter() - started:.1f} s")

    plan_busy = explain_poll(engine, first_due + timedelta(seconds=args.window))
    last_due = first_due + timedelta(seconds=args.window)
    started, cpu_started = time.perf_counter(), time.process_time()
    if args.celery:
        run_celery_worker(url, args.concurrency, sessions, template.id, args.timers, last_due)
    elif args.loops == 1:
        firing_loop(uow, args.poll_interval, last_due)
    else:
        run_parallel_loops(url, args.loops, args.poll_interval, last_due)
    elapsed = time.perf_counter() - started
    loop_cpu = time.process_time() - cpu_started if args.loops == 1 and not args.celery else None
    lags = collect_lags(sessions, template.id)
    fired = len(lags)
    plan_idle = explain_poll(engine, datetime.now(UTC))
    report(args, fired, elapsed, loop_cpu, lags, plan_busy, plan_idle)
    engine.dispose()
    return 0 if fired == args.timers else 1


def insert_pending(engine, instance_id: str, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO timers (instance_id, task_id, element_id, kind, due_at, status, created_at) "
            "SELECT :instance, 'pending', 'wait', 'DurationTimerEventDefinition', "
            "now() + interval '1 day' + g * interval '1 second', 'waiting', now() "
            "FROM generate_series(1, :count) AS g"), {"instance": instance_id, "count": count})


def insert_due(engine, template, count: int, first_due: datetime, window: float) -> None:
    """Copies of the template instance, each waiting on its own due time (state JSON and timer row agree)."""
    state = json.loads(template.state_json)
    [(task_id, task)] = [(k, t) for k, t in state["tasks"].items() if "event_value" in t.get("internal_data", {})]
    original_value = task["internal_data"]["event_value"]
    rows, timer_rows = [], []
    now = datetime.now(UTC)
    for index in range(count):
        due = first_due + timedelta(seconds=window * index / max(count - 1, 1))
        instance_id = str(uuid.uuid4())
        rows.append({"id": instance_id, "definition_id": template.definition_id, "process_key": "bench_timer",
                     "status": "running", "version": 1, "started_at": now,
                     "state_json": template.state_json.replace(original_value, due.isoformat())})
        timer_rows.append({"instance_id": instance_id, "task_id": task_id, "due_at": due, "created_at": now})
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO process_instances (id, definition_id, process_key, status, state_json, version, "
            "started_at) VALUES (:id, :definition_id, :process_key, :status, :state_json, :version, :started_at)"),
            rows)
        connection.execute(text(
            "INSERT INTO timers (instance_id, task_id, element_id, kind, due_at, status, created_at) "
            "VALUES (:instance_id, :task_id, 'wait', 'DurationTimerEventDefinition', :due_at, 'waiting', "
            ":created_at)"), timer_rows)


def firing_loop(uow, poll_interval: float, last_due: datetime) -> int:
    """One scheduler loop, as a worker runs it: poll, fire what is due, sleep when idle; stop once the last
    timer is due and nothing is left."""
    fired = 0
    give_up = last_due + timedelta(seconds=600)
    while datetime.now(UTC) < give_up:
        count = timers.fire_due_timers(uow, limit=500)
        fired += count
        if count == 0:
            if datetime.now(UTC) > last_due:
                break
            time.sleep(poll_interval)
    return fired


def _loop_process(url: str, poll_interval: float, last_due_iso: str) -> None:
    load_all_models()
    load_handlers()
    engine = make_engine(url)
    sessions = session_factory(engine)
    settings = Settings(database_url=url)
    firing_loop(lambda: UnitOfWork(sessions, SystemClock(), settings), poll_interval,
                datetime.fromisoformat(last_due_iso))
    engine.dispose()


def run_parallel_loops(url: str, loops: int, poll_interval: float, last_due: datetime) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_loop_process, args=(url, poll_interval, last_due.isoformat()))
               for _ in range(loops)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def run_celery_worker(url: str, concurrency: int, sessions, template_id: str, expected: int,
                      last_due: datetime) -> None:
    """One `bpm worker` and one `bpm beat` (the production processes, RabbitMQ at BPM_BENCH_BROKER_URL) until every
    due timer fired or 600 s after the last due time; both are stopped by process group at the end."""
    import tempfile

    from _common import BROKER_URL, ROOT, stop_process

    var_dir = tempfile.mkdtemp(prefix="bpm-timer-lag-")
    env = dict(os.environ, BPM_DATABASE_URL=url, BPM_BROKER_URL=BROKER_URL, BPM_VAR_DIR=var_dir,
               PYTHONPATH=str(ROOT))
    bpm = str(Path(sys.executable).parent / "bpm")
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=Path(f"{var_dir}/{name}.log").open("w"),  # noqa: SIM115
                                  stderr=subprocess.STDOUT, start_new_session=True)
                 for name, command in (("worker", [bpm, "worker", f"--concurrency={concurrency}",
                                                   f"-ntimer-lag-{os.getpid()}@%h"]),
                                       ("beat", [bpm, "beat"]))]
    print(f"bpm worker (--concurrency={concurrency}) and bpm beat started; logs in {var_dir}")
    try:
        give_up = last_due + timedelta(seconds=600)
        while datetime.now(UTC) < give_up and fired_so_far(sessions, template_id) < expected:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a worker process exited; see the logs in {var_dir}")
            time.sleep(1)
    finally:
        for process in processes:
            stop_process(process)


def fired_so_far(sessions, template_id: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(HistoryEntry).where(
            HistoryEntry.event == "timer.fired", HistoryEntry.instance_id != template_id))


def collect_lags(sessions, template_id: str) -> list[float]:
    with sessions() as session:
        data = session.scalars(select(HistoryEntry.data).where(HistoryEntry.event == "timer.fired",
                                                               HistoryEntry.instance_id != template_id))
        return sorted(float(d["lag_seconds"]) for d in data)


def explain_poll(engine, now: datetime) -> str:
    compiled = timers.due_timer_query(now, 500).compile(dialect=engine.dialect)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params)
        return "\n".join(row[0] for row in rows)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def report(args, fired, elapsed, loop_cpu, lags, plan_busy, plan_idle) -> None:
    how = (f"one bpm worker, --concurrency={args.concurrency}, with bpm beat" if args.celery
           else f"{args.loops} loop(s), poll interval {args.poll_interval} s")
    print(f"\nfired {fired:,} of {args.timers:,} timers; the loop ran {elapsed:.1f} s for a {args.window:.0f} s "
          f"window ({how})")
    if loop_cpu is not None and fired:
        print(f"firing loop CPU: {loop_cpu / fired * 1000:.2f} ms per timer (Python side; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end)")
    if lags:
        print(f"lag due -> fired: p50 {percentile(lags, 0.50):.3f} s, p99 {percentile(lags, 0.99):.3f} s, "
              f"max {lags[-1]:.3f} s, mean {statistics.fmean(lags):.3f} s")
    print(f"\nEXPLAIN ANALYZE of the poll with {args.pending:,} pending rows and {args.timers:,} due:\n{plan_busy}")
    print(f"\nEXPLAIN ANALYZE of the poll with {args.pending:,} pending rows and none due:\n{plan_idle}")


if __name__ == "__main__":
    raise SystemExit(main())
