"""Where the CPU of a step goes, by library: sample the service layer (or an HTTP worker of `bpm serve`) with py-spy.

    .venv/bin/pip install py-spy   # profiling only; not a project dependency
    .venv/bin/python benchmarks/cpu_by_library.py [--seconds 15] [--http] [--clients 4]

Default: a child process runs row (b) of benchmarks/engine_vs_server.py (start + 3 completions of the
3-approval process, each its own transaction on PostgreSQL, plus the benchmark's own lookup of the next task id)
in a loop, and py-spy records it with `--gil` (only samples of the thread holding the GIL: Python CPU, not
waiting for the database). With --http, the one HTTP worker of `bpm serve --workers 1` is recorded instead,
while the load generator of benchmarks/throughput.py runs.
Each sample is counted once, by the library of its innermost frame (the engine, SQLAlchemy's ORM, its statement
layer, its execution layer, psycopg, the web framework, the project's own code ...), and the samples inside
SQLAlchemy are also counted by the project function that called into it. A sampling profiler does not slow the
code down the way cProfile does, so the shares are those of the real run. Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import subprocess
import tempfile
import time
from pathlib import Path

from _common import BIN, generate_load, private_database, scratch_dir, seed, start_api

LIBRARIES = (  # (label, substrings of the frame's file path), first match wins
    ("engine: SpiffWorkflow + bpm/engine.py", ("SpiffWorkflow/", "bpm/engine.py")),
    ("SQLAlchemy ORM", ("sqlalchemy/orm/",)),
    ("SQLAlchemy statements (sql/: building, cache keys, compiling)", ("sqlalchemy/sql/",)),
    ("SQLAlchemy execution (engine/, pool/, event/)", ("sqlalchemy/engine/", "sqlalchemy/pool/", "sqlalchemy/event/")),
    ("SQLAlchemy other", ("sqlalchemy/",)),
    ("psycopg", ("psycopg",)),
    ("web framework (granian, Flask, werkzeug, flask-smorest, webargs, marshmallow)",
     ("granian/", "flask/", "werkzeug/", "flask_smorest/", "webargs/", "marshmallow/", "flask_babel/")),
    ("json", ("json/",)),
    ("project code (bpm/, api/)", ("bpm/", "api/")),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--http", action="store_true", help="sample an HTTP worker under HTTP load instead")
    parser.add_argument("--clients", type=int, default=4, help="with --http: concurrent clients")
    args = parser.parse_args()
    samples = Path(tempfile.mkdtemp(prefix="bpm-py-spy-")) / "samples.txt"
    with private_database("bench_cpu_by_library") as (url, _name):
        seed(url)
        if args.http:
            what = sample_http_worker(url, args.seconds, args.clients, samples)
        else:
            what = sample_service_layer(url, args.seconds, samples)
    print(what)
    print(report(samples))


def sample_service_layer(url: str, seconds: float, output: Path) -> str:
    context = multiprocessing.get_context("spawn")
    ready, stop, done = context.Event(), context.Event(), context.Queue()
    child = context.Process(target=_run_instances, args=(url, ready, stop, done))
    child.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("the service layer did not start")
        record(child.pid, seconds, output)
    finally:
        stop.set()
        instances = done.get(timeout=60)
        child.join(60)
    return f"service layer: {instances} instances in the sampled loop; samples in {output}"


def _run_instances(url: str, ready, stop, done) -> None:
    from engine_vs_server import ServiceLayer

    layer = ServiceLayer(url)
    for _ in range(30):  # warm-up: caches, prepared statements
        layer.run_instance()
    ready.set()
    instances = 0
    while not stop.is_set():
        layer.run_instance()
        instances += 1
    layer.context.engine.dispose()
    done.put(instances)


def sample_http_worker(url: str, seconds: float, clients: int, output: Path) -> str:
    api = start_api(url, 1, scratch_dir())
    try:
        generate_load([api.port], 2, 3.0)  # warm-up
        [worker] = api.worker_pids()
        spy = record(worker, seconds, output, wait=False)
        load = generate_load([api.port], clients, seconds + 2)
        spy.wait()
    finally:
        api.stop()
    return (f"HTTP worker: {load.completed} instances by {clients} clients, {len(load.errors)} errors; "
            f"samples in {output}")


def record(pid: int, seconds: float, output: Path, wait: bool = True) -> subprocess.Popen:
    spy = subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                            "--rate", "250", "--gil", "--format", "raw", "--output", str(output)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    if wait:
        spy.wait()
        time.sleep(0.5)
    return spy


def report(raw: Path) -> str:
    by_library, sqlalchemy_callers, total = collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, count = stack.split(";"), int(count)
        total += count
        library = library_of(frames[-1])
        by_library[library] += count
        if library.startswith("SQLAlchemy"):
            sqlalchemy_callers[_project_caller(frames)] += count
    lines = [f"{total} samples (GIL held); share by the library of the innermost frame:"]
    lines += [f"  {count / total:6.1%}  {label}" for label, count in by_library.most_common()]
    lines.append("samples inside SQLAlchemy, by the project function that called it:")
    lines += [f"  {count / total:6.1%}  {name}" for name, count in sqlalchemy_callers.most_common(12)]
    return "\n".join(lines)


def library_of(frame: str) -> str:
    path = frame.rsplit("(", 1)[-1]
    for label, markers in LIBRARIES:
        if any(marker in path for marker in markers):
            return label
    return "Python standard library and other"


def _project_caller(frames: list[str]) -> str:
    """The innermost frame of the project's own code, excluding the engine adapter (py-spy may cut deep stacks)."""
    for frame in reversed(frames):
        path = frame.rsplit("(", 1)[-1]
        if path.startswith(("bpm/", "api/")) or "/bpm/" in path or "/api/" in path:
            return frame.split(" (", 1)[0] + " " + path.rstrip(")").split(":")[0]
    return "(stack cut short by the sampler)"


if __name__ == "__main__":
    main()
