"""What PostgreSQL's compression of an instance's state costs: pglz (PostgreSQL's default) against lz4 (migration 0017).

    .venv/bin/python benchmarks/state_compression.py [--rows 2000] [--rounds 5]

Every command that moves an instance rewrites its whole state (`process_instances.state_json`), and PostgreSQL
compresses a text value of more than about 2 KB before it stores it and decompresses it on every read. Takes two
real states from bpm.engine: the 3-approval process after its start (benchmarks/three_approvals.bpmn) and a
100-way parallel multi-instance after its start (benchmarks/cost_growth.py's parallel_100). On its own migrated
database, in each round and for each method in turn: sets the column's compression, inserts `--rows` instances
holding the state, then on one connection, as prepared statements outside a transaction, as the server sends them:
- UPDATE each instance's state and version by id (the write of every step);
- SELECT each instance's state by id (the completion's load reads it).
Reports, per statement (median of the rounds), the CPU of the PostgreSQL backend (from /proc: PostgreSQL must run on
this machine) and the wall time seen by the client, and the stored size of the state (pg_column_size).
Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg
from _common import THREE_APPROVALS, libpq_url, private_database
from cost_growth import parallel_bpmn
from engine_vs_server import START_VARIABLES

from bpm import engine

METHODS = ("pglz", "lz4")


def started_state(bpmn: bytes) -> str:
    _xml, compiled = engine.compile_bpmn(bpmn)
    workflow = engine.ProcessRuntime(compiled[0].spec_json).new_workflow()
    engine.start(workflow, dict(START_VARIABLES))
    return engine.snapshot(workflow).state_json


def backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def fill(connection: psycopg.Connection, method: str, state: str, rows: int) -> list[str]:
    connection.execute("TRUNCATE process_instances CASCADE")
    connection.execute(f"ALTER TABLE process_instances ALTER COLUMN state_json SET COMPRESSION {method}")
    ids = [str(uuid.uuid4()) for _ in range(rows)]
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO process_instances (id, definition_id, process_key, status, state_json, version, started_at) "
            "VALUES (%s, 1, 'bench', 'running', %s, 1, now())", [(instance_id, state) for instance_id in ids])
    connection.execute("VACUUM ANALYZE process_instances")
    return ids


def timed(connection: psycopg.Connection, pid: int, statement: str, parameters: list[tuple]) -> tuple[float, float]:
    """(backend CPU, wall) in microseconds per execution."""
    cpu, began = backend_cpu_seconds(pid), time.perf_counter()
    for values in parameters:
        connection.execute(statement, values, prepare=True).fetchall()
    wall = time.perf_counter() - began
    return (backend_cpu_seconds(pid) - cpu) / len(parameters) * 1e6, wall / len(parameters) * 1e6


def measure(url: str, method: str, state: str, rows: int) -> dict[str, float]:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        ids = fill(connection, method, state, rows)
        pid = connection.info.backend_pid
        update_cpu, update_wall = timed(
            connection, pid, "UPDATE process_instances SET state_json = %s, version = version + 1 WHERE id = %s "
                             "RETURNING version", [(state, instance_id) for instance_id in ids])
        select_cpu, select_wall = timed(connection, pid, "SELECT state_json FROM process_instances WHERE id = %s",
                                        [(instance_id,) for instance_id in ids])
        stored, method_used = connection.execute(
            "SELECT avg(pg_column_size(state_json)), min(pg_column_compression(state_json)) "
            "FROM process_instances").fetchone()
    assert method_used == method, f"the states were stored with {method_used}, not {method}"
    return {"update_cpu": update_cpu, "update_wall": update_wall, "select_cpu": select_cpu,
            "select_wall": select_wall, "stored": float(stored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    states = {"3-approval": started_state(THREE_APPROVALS.read_bytes()),
              "parallel_100": started_state(parallel_bpmn(100)[1])}
    with private_database("bench_compression") as (url, _name):
        with psycopg.connect(libpq_url(url), autocommit=True) as connection:
            connection.execute(
                "INSERT INTO process_definitions (id, key, version, name, bpmn_xml, spec_json, model, checksum, "
                "deployed_at) VALUES (1, 'bench', 1, 'Bench', '', '{}', '{}', 'x', now())")
        results = {(name, method): [] for name in states for method in METHODS}
        for _ in range(args.rounds):
            for name, state in states.items():
                rows = args.rows if len(state) < 10_000 else max(1, args.rows // 4)
                for method in METHODS:
                    results[name, method].append(measure(url, method, state, rows))
    report(states, results, args)


def report(states: dict[str, str], results: dict, args) -> None:
    print(f"{args.rounds} rounds; medians; us per statement (backend CPU / client wall)")
    print("| state | text bytes | method | stored bytes | UPDATE | SELECT |")
    print("|---|---|---|---|---|---|")
    for name, state in states.items():
        for method in METHODS:
            runs = results[name, method]

            def median(key: str, runs=runs) -> float:
                return statistics.median(run[key] for run in runs)

            print(f"| {name} | {len(state):,} | {method} | {median('stored'):,.0f} | "
                  f"{median('update_cpu'):.1f} / {median('update_wall'):.1f} | "
                  f"{median('select_cpu'):.1f} / {median('select_wall'):.1f} |")
        ratios = [a["update_cpu"] / b["update_cpu"]
                  for a, b in zip(results[name, "lz4"], results[name, "pglz"], strict=True) if b["update_cpu"] > 0]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "n/a (too few rows for the CPU clock's ticks)"
        print(f"| {name} | | lz4 / pglz, UPDATE backend CPU (median of the rounds' ratios) | | {ratio} | |")


if __name__ == "__main__":
    main()
