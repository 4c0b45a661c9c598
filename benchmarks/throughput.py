"""Throughput under concurrency over HTTP (`bpm serve` + PostgreSQL), scale-out, and peak memory.

    .venv/bin/python benchmarks/throughput.py [--seconds 10] [--clients 1,4,16,64] [--api-workers W] [--analyze]

1. One API server (`bpm serve --workers W` with a broker URL: granian, no embedded threads; W is `bpm serve`'s own
   default unless given: one worker per CPU, at least 2).
   For each N in --clients: N concurrent clients (threads in 1-2 client processes, separate from the server),
   each looping over 3-approval instances: POST start (201 with the first open task), then per approver
   POST complete and GET the next approver's inbox filtered by business key (6 calls, 4 of them writes).
   Reports instances/s, write calls/s, database commits/s and rows written/s (pg_stat_database deltas:
   xact_commit, tup_inserted + tup_updated + tup_deleted), p50/p95/p99 per call type, errors, and the CPU
   each completed instance cost (/proc deltas): our server processes (the HTTP server's main process and workers; in the
   scale-out also Celery and beat), every PostgreSQL process, and the client processes. On a saturated machine
   that CPU is what bounds the rate, and it varies less between runs than the rate does.
2. Scale-out: two API masters (W/2 workers each) on two ports, clients round-robin over them, plus two
   `bpm worker` Celery processes and one `bpm beat` on the same PostgreSQL and RabbitMQ (they relay the
   outbox rows the load produces). Errors = HTTP calls that failed + ERROR/Traceback lines in the logs.
3. Memory: peak RSS (VmHWM) of every API worker process and every Celery process at the end of the runs.
With --analyze, the database is analyzed before each level, as autovacuum keeps a live server's statistics; by
default it is not (a PostgreSQL without autovacuum plans every statement without statistics).
Creates and drops its own database; stops every process it started.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from _common import (
    BIN,
    ROOT,
    cpu_by_process,
    cpu_used,
    generate_load,
    libpq_url,
    peak_rss_kb,
    private_database,
    scratch_dir,
    seed,
    server_env,
    start_api,
    start_worker,
)
from _common import Server as _Server
from _common import database_stats as stats

from api.cli import web_workers

WRITES_PER_INSTANCE = 4


def run_level(url: str, servers: list[_Server], clients: int, seconds: float) -> dict:
    ports = [server.port for server in servers if server.kind == "api"]
    before = stats(url)
    cpu_before = cpu_by_process(servers)
    load = generate_load(ports, clients, seconds)
    cpu = cpu_used(cpu_before, cpu_by_process(servers))
    time.sleep(1.0)  # pg_stat_database is flushed by backends about once a second
    after = stats(url)
    delta = {k: after[k] - before[k] for k in before}
    elapsed = load.seconds
    per_instance = max(load.completed, 1) / 1000
    return {"clients": clients, "seconds": elapsed, "instances": load.completed,
            "cpu_ms": {"server": cpu["server"] / per_instance, "postgres": cpu["postgres"] / per_instance,
                       "clients": load.client_cpu / per_instance},
            "instances_s": load.completed / elapsed,
            "write_calls_s": (sum(1 for kind, _ in load.samples if kind != "inbox")) / elapsed,
            "commits_s": delta["commits"] / elapsed,
            "rows_s": (delta["inserted"] + delta["updated"] + delta["deleted"]) / elapsed,
            "latency": load.latencies(), "errors": load.errors}


def print_level(label: str, result: dict) -> None:
    lat = result["latency"]
    cpu = result["cpu_ms"]
    print(f"| {label} | {result['clients']} | {result['instances_s']:.1f} | {result['write_calls_s']:.0f} | "
          f"{result['commits_s']:.0f} | {result['rows_s']:.0f} | "
          + " | ".join(f"{lat[k]['p50']:.0f} / {lat[k]['p95']:.0f} / {lat[k]['p99']:.0f}" if k in lat else "-"
                       for k in ("start", "complete", "inbox"))
          + f" | {cpu['server']:.1f} / {cpu['postgres']:.1f} / {cpu['clients']:.1f}"
          + f" | {len(result['errors'])} |", flush=True)
    for error in result["errors"][:3]:
        print("    error:", error)


HEADER = ("| setup | clients | instances/s | write calls/s | commits/s | rows written/s | "
          "start p50/p95/p99 ms | complete p50/p95/p99 ms | inbox p50/p95/p99 ms | "
          "CPU ms per instance: server / PostgreSQL / clients | errors |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def memory_of(servers: list[_Server]) -> list[str]:
    lines = []
    for server in servers:
        pids = [server.process.pid, *server.worker_pids()]
        peaks = [peak_rss_kb(pid) / 1024 for pid in pids]
        role = "API" if server.kind == "api" else server.kind
        lines.append(f"{role} {server.port or ''}: master {peaks[0]:.0f} MB, "
                     f"children {', '.join(f'{p:.0f}' for p in peaks[1:])} MB")
    return lines


def log_errors(servers: list[_Server]) -> int:
    count = 0
    for server in servers:
        text = server.log.read_text(errors="replace")
        count += sum(1 for line in text.splitlines() if "Traceback" in line or " ERROR" in line
                     or "[ERROR]" in line)
    return count


def start_beat(url: str, log_dir) -> _Server:
    log = log_dir / "beat.log"
    process = subprocess.Popen([str(BIN / "bpm"), "beat"], cwd=ROOT, env=server_env(url, 0, str(log_dir)),
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    return _Server(process, 0, log, "beat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--api-workers", type=int, default=web_workers(),
                        help="HTTP workers of the single API server (default: bpm serve's, one per CPU, at least 2)")
    parser.add_argument("--skip-scale-out", action="store_true")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the database before each level, as autovacuum would on a live server (without "
                             "it, a server running without autovacuum plans every statement without statistics)")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    logs = scratch_dir()
    print(f"logs in {logs}")
    with private_database("bench_load") as (url, _name):
        seed(url)
        started: list[_Server] = []
        try:
            api = start_api(url, args.api_workers, logs)
            started.append(api)
            generate_load([api.port], 2, 2.0)  # warm-up
            print(HEADER)
            for clients in levels:
                if args.analyze:
                    analyze(url)
                print_level(f"1 API x {args.api_workers} workers", run_level(url, [api], clients, args.seconds))
            print("\n".join(memory_of([api])))
            api.stop()
            started.remove(api)
            if args.skip_scale_out:
                return
            half = max(1, args.api_workers // 2)
            apis = [start_api(url, half, logs), start_api(url, half, logs)]
            started += apis
            workers = [start_worker(url, "w1", logs), start_worker(url, "w2", logs), start_beat(url, logs)]
            started += workers
            ports = [server.port for server in apis]
            generate_load(ports, 2, 2.0)
            print(HEADER)
            for clients in [n for n in levels if n >= 4]:
                if args.analyze:
                    analyze(url)
                print_level(f"2 APIs x {half} workers + 2 Celery workers + beat",
                            run_level(url, apis + workers, clients, args.seconds))
            time.sleep(3)  # let the workers relay what the last run produced
            print("\n".join(memory_of(apis + workers[:2])))
            print(f"ERROR/Traceback lines in API, worker and beat logs: {log_errors(apis + workers)}")
            print(f"outbox: {outbox_summary(url)}")
        finally:
            for server in started:
                server.stop()


def analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("ANALYZE")


def outbox_summary(url: str) -> str:
    import psycopg

    try:
        with psycopg.connect(libpq_url(url)) as connection:
            rows = connection.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        return ", ".join(f"{status}: {count}" for status, count in rows) or "empty"
    except psycopg.Error as error:
        return f"not readable ({error})"


if __name__ == "__main__":
    main()
