"""What a request costs the server before any work of ours: the HTTP server, then Flask, then the app's own layers.

    .venv/bin/python benchmarks/http_floor.py [--rounds 5] [--seconds 3] [--clients 4]

Starts, side by side, one worker process (4 application threads, as `bpm serve` runs each) of:
- "granian, a WSGI function": granian with the shipped configuration serving a function that returns a small JSON
  body, the HTTP server's own cost;
- "granian + Flask, one route": a bare Flask application returning the same body with `jsonify`;
- "bpm serve, /healthz": the server itself (`bpm serve --workers 1`), its health route (no database, no token);
- "bpm serve, an empty inbox": GET /api/v1/tasks?business_key=... that matches nothing, with a token: the
  authentication, a read-only unit of work, one SELECT, the query string's parsing and the page's dump.
Then loads them in turn, round by round (the order rotates), with `--clients` keep-alive HTTP clients in another
process, and reports per server the median over rounds of the requests/s and of the server's CPU per request
(the worker processes and their parent, from /proc). The clients share the machine's cores, as in
benchmarks/throughput.py. Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    BIN,
    ROOT,
    Server,
    _children,
    _wait_healthy,
    cpu_seconds,
    free_port,
    private_database,
    scratch_dir,
    seed,
    server_env,
    start_api,
    stop_process,
    token_of,
)

THREADS = "4"  # application threads per worker, BPM_WEB_THREADS' default


@dataclass
class Target:
    name: str
    server: Server
    path: str
    user: str | None = None


def start_granian(target: str, log_dir: Path, factory: bool = False) -> Server:
    """granian as `bpm serve` configures it (api.cli._http_server), one worker, serving `target` of
    benchmarks/http_floor_apps.py."""
    port = free_port()
    log = log_dir / f"granian-{port}.log"
    command = [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--blocking-threads", THREADS, "--no-ws", *(["--factory"] if factory else []), target]
    process = subprocess.Popen(command, cwd=ROOT / "benchmarks", env={**server_env("", port, str(log_dir)),
                                                                     "PYTHONPATH": str(ROOT / "benchmarks")},
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, port, log)
    _wait_healthy(server)
    return server


def _clients(port: int, path: str, token: str | None, threads: int, seconds: float, out) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    counts: list[int] = []
    failures: list[str] = []

    def client() -> None:
        connection, done = http.client.HTTPConnection("127.0.0.1", port, timeout=30), 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"{path}: {response.status}")
            done += 1
        counts.append(done)

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.send((sum(counts), failures))


def load(target: Target, clients: int, seconds: float) -> tuple[float, float]:
    """(requests/s, server CPU us per request) of one slice."""
    pids = [target.server.process.pid, *_children(target.server.process.pid)]
    spawn = multiprocessing.get_context("spawn")
    receive, send = spawn.Pipe()
    token = token_of(target.user) if target.user else None
    process = spawn.Process(
        target=_clients, args=(target.server.port, target.path, token, clients, seconds, send))
    before, began = cpu_seconds(pids), time.monotonic()
    process.start()
    done, failures = receive.recv()
    elapsed = time.monotonic() - began
    used = cpu_seconds(pids) - before
    process.join()
    if failures or not done:
        raise RuntimeError(f"{target.name}: {len(failures)} failed requests, e.g. {failures[:1]}")
    return done / elapsed, used * 1e6 / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    log_dir = scratch_dir()
    with private_database("bench_http_floor") as (url, _name):
        seed(url)
        servers = []
        try:
            servers.append(start_granian("http_floor_apps:wsgi_function", log_dir))
            servers.append(start_granian("http_floor_apps:bare_flask", log_dir, factory=True))
            servers.append(start_api(url, 1, log_dir))
            targets = [Target("granian, a WSGI function", servers[0], "/healthz"),
                       Target("granian + Flask, one route", servers[1], "/healthz"),
                       Target("bpm serve, /healthz", servers[2], "/healthz"),
                       Target("bpm serve, an empty inbox", servers[2], "/api/v1/tasks?business_key=none", "alice")]
            for target in targets:
                load(target, args.clients, 1.0)  # warm-up: imports, prepared statements
            results: dict[str, list[tuple[float, float]]] = {target.name: [] for target in targets}
            for number in range(args.rounds):
                shift = number % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    results[target.name].append(load(target, args.clients, args.seconds))
        finally:
            for server in servers:
                stop_process(server.process)
    print(f"{args.rounds} rounds x {args.seconds:g} s per server, {args.clients} keep-alive clients, one worker "
          f"process with {THREADS} threads each; medians of the rounds")
    print("| server | requests/s | server CPU per request |")
    print("|---|---|---|")
    for name, rows in results.items():
        rate, cpu = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"| {name} | {rate:,.0f} | {cpu:.0f} us |")


if __name__ == "__main__":
    main()
