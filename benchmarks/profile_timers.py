"""Profile one scheduler firing timers on PostgreSQL: statements per firing and where the CPU goes.

    .venv/bin/python benchmarks/profile_timers.py [--timers 2000]

Creates its own database, deploys the timer benchmark's process (`start -> timer -> end`), inserts `--timers`
instances whose timers are already due, then fires them with `bpm.services.timers.fire_due_timers` (what
Celery beat and the embedded loop call): first a few with a statement counter, then the rest under cProfile
with a CPU clock (waiting for PostgreSQL excluded). Prints the statements of one firing, the wall time and
CPU per firing, and the functions with the most cumulative CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from datetime import UTC, datetime, timedelta

from _common import private_database
from sqlalchemy import event
from timer_lag import ADMIN, PROCESS, insert_due

from bpm.adapters.db import make_engine
from bpm.adapters.orm import load_all_models
from bpm.adapters.unit_of_work import UnitOfWork, session_factory
from bpm.clock import SystemClock
from bpm.config import Settings
from bpm.services import definitions, instances, load_handlers, timers

CHUNK = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, default=2000)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--no-profile", action="store_true", help="only the timing without a profiler")
    args = parser.parse_args()
    with private_database("bench_timers") as (url, _name):
        load_all_models()
        load_handlers()
        engine = make_engine(url)
        sessions = session_factory(engine)
        settings = Settings(database_url=url)

        def uow() -> UnitOfWork:
            return UnitOfWork(sessions, SystemClock(), settings)

        definitions.deploy(definitions.DeployBpmn(PROCESS.encode(), "bench.bpmn", "bench"), uow())
        template = instances.start_instance(instances.StartInstance("bench_timer", ADMIN), uow()).instance
        insert_due(engine, template, args.timers, datetime.now(UTC) - timedelta(minutes=5), 60.0)
        statements: list[str] = []

        def count(conn, cursor, sql, *rest):
            statements.append(sql)

        event.listen(engine, "before_cursor_execute", count)
        timers.fire_due_timers(uow, limit=3)
        event.remove(engine, "before_cursor_execute", count)
        print(f"statements for 3 firings (one pass): {len(statements)}")
        for sql in statements:
            print("  ", " ".join(sql.split())[:160])
        plain = (args.timers - 3) // 2
        chunks = [fire(uow, CHUNK) for _ in range(plain // CHUNK)]
        fired = sum(c[2] for c in chunks)
        wall = statistics.median(c[0] / c[2] for c in chunks) * 1000
        cpu = statistics.median(c[1] / c[2] for c in chunks) * 1000
        print(f"fired {fired} without a profiler, in {len(chunks)} chunks of {CHUNK}: median {wall:.2f} ms wall, "
              f"{cpu:.2f} ms CPU per firing")
        if args.no_profile:
            engine.dispose()
            return
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        wall, cpu, fired = fire(uow, args.timers - 3 - plain)
        profiler.disable()
        print(f"fired {fired} under cProfile: {wall / fired * 1000:.2f} ms wall, {cpu / fired * 1000:.2f} ms CPU "
              "per firing")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
        engine.dispose()


def fire(uow, count: int) -> tuple[float, float, int]:
    """Fire `count` due timers in passes of at most 500: (wall seconds, CPU seconds, fired)."""
    started, cpu = time.perf_counter(), time.process_time()
    fired = 0
    while fired < count:
        fired_now = timers.fire_due_timers(uow, limit=min(500, count - fired))
        if not fired_now:
            break
        fired += fired_now
    return time.perf_counter() - started, time.process_time() - cpu, max(fired, 1)


if __name__ == "__main__":
    main()
