"""Profile the service layer's hot path (start + 3 completions of the 3-approval process) on PostgreSQL.

    .venv/bin/pip install pyinstrument   # profiling only; not a project dependency
    .venv/bin/python benchmarks/profile_service.py [--instances 100] [--html profile.html]

Prints the SQL statements of one instance, pyinstrument's call tree, a CPU breakdown (cProfile with
a CPU clock, so waiting for PostgreSQL is excluded) by service function and event handler, for the same
calls benchmarks/engine_vs_server.py times as (b), and the CPU cost of the loads that issue 7 merged into one
query each, old and new alternately on the same open task. Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from _common import driver_statements, private_database, seed
from engine_vs_server import LOOKUP, STEPS_PER_INSTANCE, ServiceLayer
from pyinstrument import Profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--html")
    args = parser.parse_args()
    with private_database("bench_profile") as (url, _name):
        seed(url)
        layer = ServiceLayer(url)
        layer.run_instance()
        with driver_statements(layer.context.engine) as sent:  # SQLAlchemy's and those sent on the driver
            layer.run_instance()
        statements = [sql for sql, *_ in sent if not sql.startswith(LOOKUP)]  # not the benchmark's own lookups
        print(f"SQL statements per instance (4 steps): {len(statements)}")
        for sql in statements:
            print("  ", " ".join(sql.split())[:150])
        profiler = Profiler(interval=0.0005)
        profiler.start()
        spent = sum(layer.run_instance() for _ in range(args.instances))
        profiler.stop()
        print(f"{args.instances * STEPS_PER_INSTANCE / spent:.0f} steps/s under the profiler")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        print(cpu_breakdown(layer, args.instances))
        print(merged_queries(layer))
        if args.html:
            with open(args.html, "w") as handle:
                handle.write(profiler.output_html())
        layer.context.engine.dispose()


def merged_queries(layer, repeat: int = 300, rounds: int = 5) -> str:
    """CPU microseconds per call (median of `rounds`) of the completion's loads, old (one query per row kind)
    against new (one query), alternately, on one open task; rows are dropped from the session before each load."""
    import statistics
    import uuid

    from engine_vs_server import _existing_rows_one_by_one, _load_one_by_one

    from bpm.services import instances, projection, tasks

    started = instances.start_instance(instances.StartInstance(
        "three_approvals", layer.actors["ivan"], uuid.uuid4().hex, {"amount": 5000}), layer.context.uow())
    instance_id = started.instance.id
    task_id = layer.open_task(instance_id)
    uow = layer.context.uow()
    pairs = {"task + signers + instance + definition": (_load_one_by_one, tasks.load_for_completion, task_id),
             "open tasks + timers + message subscriptions": (_existing_rows_one_by_one, projection._existing_rows,
                                                             instance_id)}
    lines = ["CPU per call, old (one query each) -> new (one query), median of rounds:"]
    with uow:
        for label, (old, new, key) in pairs.items():
            spent: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(rounds):
                for name, function in (("old", old), ("new", new)):
                    began = time.process_time()
                    for _ in range(repeat):
                        uow.session.expunge_all()
                        function(uow, key)
                    spent[name].append((time.process_time() - began) * 1e6 / repeat)
            before, after = statistics.median(spent["old"]), statistics.median(spent["new"])
            lines.append(f"  {label}: {before:.0f} -> {after:.0f} us")
    return "\n".join(lines)


def cpu_breakdown(layer, instances: int) -> str:
    """CPU ms per step spent under each of our functions (cumulative), largest first."""
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for _ in range(instances):
        layer.run_instance()
    profile.disable()
    stats = pstats.Stats(profile)
    steps = instances * STEPS_PER_INSTANCE
    rows = [(cumulative, f"{name} ({path.split('/bpm/')[-1]}:{line})")
            for (path, line, name), (_calls, _primitive, _own, cumulative, _callers) in stats.stats.items()
            if "/bpm/" in path and cumulative * 1000 / steps >= 0.2]
    lines = [f"CPU per step under cProfile (inflated by the profiler; compare shares): "
             f"{stats.total_tt * 1000 / steps:.2f} ms"]
    lines += [f"{cumulative * 1000 / steps:7.2f} ms  {label}" for cumulative, label in sorted(rows, reverse=True)[:40]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
