"""Where PostgreSQL's CPU goes while clients run 3-approval instances over HTTP: per statement, and per round trip.

    .venv/bin/python benchmarks/pg_statements.py [--clients 4] [--seconds 10] [--top 15]

Needs PostgreSQL on this machine with pg_stat_statements preloaded (a profiling set-up, not something the server
needs; restart PostgreSQL after each statement):

    ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';   -- then, when done:
    ALTER SYSTEM RESET shared_preload_libraries;

Starts `bpm serve` (its default number of HTTP workers: one per CPU, at least 2) on its own database, warms it
up, resets the statistics and runs the load generator of benchmarks/throughput.py. Prints, per completed
instance:
- each statement's calls, execution + planning time and mean time (pg_stat_statements; wall time inside the
  server, so on a busy 2-core machine it includes waiting for a core);
- the CPU the database's backends used (from /proc), next to the sum of the statements' times: the difference
  is what PostgreSQL spends around the statements (protocol messages, transaction start and end, commits);
- the floor of one round trip: `SELECT 1` (prepared) in a loop on one connection, the CPU it costs the client
  and the backend, and that floor times the round trips per instance (statements plus BEGIN and COMMIT).
Each statement's row also gives the WAL records and bytes it wrote per call.

With `--serial N`, N instances run one after the other through the service layer instead (row (b) of
benchmarks/engine_vs_server.py: no HTTP server, one client): with no other work on the machine's cores, a
statement's time inside the server is close to the CPU it costs. The benchmark's own next-task lookups are left
out of the statements (the backends' CPU includes them).
"""

from __future__ import annotations

import argparse
import time

import psycopg
from _common import _admin_conninfo, cpu_seconds, generate_load, private_database, scratch_dir, seed, start_api
from engine_vs_server import LOOKUP, ServiceLayer
from sqlalchemy.engine import make_url

from api.cli import web_workers

FLOOR_CALLS = 5000


def connect(url: str) -> psycopg.Connection:
    parsed = make_url(url)
    return psycopg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username or "root",
                           dbname=parsed.database, autocommit=True)


def preloaded(url: str) -> bool:
    with psycopg.connect(_admin_conninfo(url), autocommit=True) as connection:
        libraries = connection.execute("SHOW shared_preload_libraries").fetchone()[0]
    return "pg_stat_statements" in libraries


def backends_cpu(connection: psycopg.Connection) -> dict[int, float]:
    """CPU seconds used so far by each backend of this database but the caller's own (one that starts later
    counts whole)."""
    pids = [pid for (pid,) in connection.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    return {pid: cpu_seconds([pid]) for pid in pids}


def statement_rows(connection: psycopg.Connection) -> list[tuple]:
    """(calls, execution + planning ms, WAL records, WAL bytes, query) per statement, the costliest first; the
    benchmark's own statements left out."""
    rows = connection.execute(
        "SELECT calls, total_exec_time + total_plan_time, wal_records, wal_bytes, query FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_stat_activity%'"
        " ORDER BY 2 DESC").fetchall()
    return [row for row in rows if not row[-1].startswith(LOOKUP)]


def round_trip_floor(connection: psycopg.Connection) -> tuple[float, float]:
    """Client and backend CPU microseconds of one prepared `SELECT 1` round trip."""
    backend = connection.info.backend_pid
    connection.execute("SELECT 1", prepare=True)
    client_before, backend_before = time.process_time(), cpu_seconds([backend])
    for _ in range(FLOOR_CALLS):
        connection.execute("SELECT 1", prepare=True)
    client = (time.process_time() - client_before) / FLOOR_CALLS * 1e6
    return client, (cpu_seconds([backend]) - backend_before) / FLOOR_CALLS * 1e6


def shortened(query: str, width: int = 110) -> str:
    text = " ".join(query.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def report(rows: list[tuple], instances: int, backend_cpu: float, floor: tuple[float, float], top: int) -> None:
    total_ms = sum(row[1] for row in rows)
    round_trips = sum(row[0] for row in rows) / instances
    print(f"{instances} instances; per instance:")
    print(f"  backends' CPU {backend_cpu * 1000 / instances:.2f} ms; statements' execution + planning "
          f"{total_ms / instances:.2f} ms; {round_trips:.1f} round trips (statements, BEGIN, COMMIT)")
    client_us, backend_us = floor
    print(f"  round-trip floor (SELECT 1): client {client_us:.0f} us, backend {backend_us:.0f} us -> "
          f"x {round_trips:.1f} = client {client_us * round_trips / 1000:.2f} ms, "
          f"backend {backend_us * round_trips / 1000:.2f} ms")
    print(f"\n{'ms/instance':>11} {'calls/inst':>10} {'mean us':>8} {'WAL rec':>7} {'WAL B':>6}  "
          "statement (WAL records and bytes per call)")
    for calls, total, wal_records, wal_bytes, query in rows[:top]:
        print(f"{total / instances:11.3f} {calls / instances:10.1f} {total * 1000 / calls:8.0f} "
              f"{wal_records / calls:7.1f} {int(wal_bytes) / calls:6.0f}  {shortened(query)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--serial", type=int, default=0, metavar="N",
                        help="run N instances through the service layer, one client, instead of HTTP load")
    args = parser.parse_args()
    with private_database("bench_pg_statements") as (url, _name):
        if not preloaded(url):
            raise SystemExit("pg_stat_statements is not in shared_preload_libraries: see this script's docstring")
        seed(url)
        with connect(url) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            run = run_serially if args.serial else run_over_http
            completed, backend_cpu, rows = run(url, connection, args)
            floor = round_trip_floor(connection)
        report(rows, completed, backend_cpu, floor, args.top)


def run_over_http(url: str, connection: psycopg.Connection, args) -> tuple[int, float, list[tuple]]:
    """(instances completed, the backends' CPU seconds, statement rows) of `--seconds` of load over HTTP."""
    api = start_api(url, web_workers(), scratch_dir())
    try:
        generate_load([api.port], args.clients, 3.0)  # warm-up: every worker's connections and statements
        result, backend_cpu, rows = measured(connection, lambda: generate_load([api.port], args.clients, args.seconds))
    finally:
        api.stop()
    print(f"{args.clients} clients, {result.completed / result.seconds:.1f} instances/s, "
          f"{len(result.errors)} errors")
    return result.completed, backend_cpu, rows


def run_serially(url: str, connection: psycopg.Connection, args) -> tuple[int, float, list[tuple]]:
    """The same for `--serial` instances through the service layer, one after the other."""
    layer = ServiceLayer(url)

    def instances() -> float:
        began = time.perf_counter()
        for _ in range(args.serial):
            layer.run_instance()
        return time.perf_counter() - began

    try:
        for _ in range(30):  # warm-up: the connection's prepared statements, the spec cache
            layer.run_instance()
        seconds, backend_cpu, rows = measured(connection, instances)
    finally:
        layer.context.engine.dispose()
    print(f"service layer, one client: {args.serial} instances in {seconds:.1f} s (the next-task lookups included)")
    return args.serial, backend_cpu, rows


def measured(connection: psycopg.Connection, run):
    """(what `run()` returns, the CPU seconds the backends used meanwhile, the statement rows of its run), the
    statistics reset just before it."""
    before = backends_cpu(connection)
    connection.execute("SELECT pg_stat_statements_reset()")
    result = run()
    backend_cpu = sum(used - before.get(pid, 0.0) for pid, used in backends_cpu(connection).items())
    return result, backend_cpu, statement_rows(connection)


if __name__ == "__main__":
    main()
