"""A/B over HTTP: this checkout against another one (older code), loaded in alternating slices.

    git worktree add ../baseline <commit>
    .venv/bin/python benchmarks/ab_http.py --baseline ../baseline [--slices 12] [--seconds 4] [--clients 4]
        [--decide complete|approve] [--api-workers W] [--baseline-api-workers N] [--threads T] [--baseline-threads N]
        [--baseline-client lean|stdlib]

Pairs two server layouts of the same code too: `--baseline . --api-workers 2 --baseline-api-workers 4`, or
`--baseline . --threads 2 --baseline-threads 4` (BPM_WEB_THREADS of each side); and two load generators against
the same code: `--baseline . --baseline-client stdlib` loads the old side with http.client (see _common.CLIENTS).

The CPU speed of this virtual machine drifts by tens of percent within minutes, so two throughput runs taken one
after the other cannot resolve a 10 % change. This script starts both servers at once (`bpm serve`, W HTTP
workers each, each on its own database migrated and seeded by its own code), then loads them in turn, slice by
slice (the order alternates), with the clients of benchmarks/throughput.py: each slice of one side has a slice
of the other right next to it. Reports, per side, the median over slices of instances/s and of the CPU each
instance cost (our server processes; every PostgreSQL process; the client processes), and the median of the
per-slice ratios new/old. The baseline's `bpm serve` must accept the same environment (BPM_* settings). With
`--decide approve` the approvers use the approve operation instead of the generic complete.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from _common import (
    BIN,
    CLIENTS,
    DECISIONS,
    ROOT,
    cpu_by_process,
    cpu_used,
    generate_load,
    private_database,
    scratch_dir,
    start_api,
)

from api.cli import web_workers


def prepare(url: str, root: Path) -> None:
    """Migrate and seed the database with the code of `root` (its own schema, its own compiled spec)."""
    script = ("import sys; sys.path.insert(0, 'benchmarks'); from _common import seed; "
              "from bpm.adapters.db import migrate; migrate(sys.argv[1]); seed(sys.argv[1])")
    subprocess.run([str(BIN / "python"), "-c", script, url], cwd=root, check=True,
                   env={"PYTHONPATH": str(root), "PATH": str(BIN)})


def load_slice(server, clients: int, seconds: float, decision: str, client: str = "lean") -> dict[str, float]:
    before = cpu_by_process([server])
    load = generate_load([server.port], clients, seconds, decision=decision, client=client)
    cpu = cpu_used(before, cpu_by_process([server]))
    done = max(load.completed, 1)
    if load.errors:
        print(f"    {len(load.errors)} errors, e.g. {load.errors[0]}", flush=True)
    return {"rate": load.completed / load.seconds, "server": cpu["server"] * 1000 / done,
            "postgres": cpu["postgres"] * 1000 / done, "clients": load.client_cpu * 1000 / done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the older code")
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--api-workers", type=int, default=web_workers(),
                        help="HTTP workers of the new side's server (default: bpm serve's, one per CPU, at least 2)")
    parser.add_argument("--baseline-api-workers", type=int, default=None,
                        help="HTTP workers of the old side's server (default: --api-workers)")
    parser.add_argument("--decide", choices=sorted(DECISIONS), default="complete",
                        help="how approvers decide a task")
    parser.add_argument("--threads", type=int, default=None, help="BPM_WEB_THREADS of the new side's server")
    parser.add_argument("--baseline-threads", type=int, default=None,
                        help="BPM_WEB_THREADS of the old side's server (default: --threads)")
    parser.add_argument("--baseline-client", choices=sorted(CLIENTS), default="lean",
                        help="the load generator's HTTP client for the old side (the new side's is lean)")
    args = parser.parse_args()
    roots = {"old": args.baseline.resolve(), "new": ROOT}
    workers = {"old": args.baseline_api_workers or args.api_workers, "new": args.api_workers}
    threads = {"old": args.baseline_threads or args.threads, "new": args.threads}
    clients = {"old": args.baseline_client, "new": "lean"}
    logs = scratch_dir()
    with private_database("bench_ab_old", migrated=False) as (old_url, _), \
            private_database("bench_ab_new", migrated=False) as (new_url, _):
        urls = {"old": old_url, "new": new_url}
        servers = {}
        try:
            for side, root in roots.items():
                prepare(urls[side], root)
                servers[side] = start_api(urls[side], workers[side], logs, root,
                                          {"BPM_WEB_THREADS": str(threads[side])} if threads[side] else None)
                generate_load([servers[side].port], 2, 2.0, decision=args.decide)  # warm-up
            slices: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for number in range(args.slices):
                order = ("old", "new") if number % 2 == 0 else ("new", "old")
                for side in order:
                    slices[side].append(load_slice(servers[side], args.clients, args.seconds, args.decide,
                                                   clients[side]))
                print(f"slice {number + 1}: " + ", ".join(
                    f"{side} {slices[side][-1]['rate']:.1f}/s {slices[side][-1]['server']:.1f} ms" for side in order),
                    flush=True)
            report(slices, args, workers, threads, clients)
        finally:
            for server in servers.values():
                server.stop()


def report(slices: dict[str, list[dict[str, float]]], args, workers: dict[str, int], threads: dict,
           clients: dict[str, str]) -> None:
    layout = {side: f"{workers[side]} x {threads[side] or 'default'}" for side in ("old", "new")}
    print(f"\n{args.slices} slices of {args.seconds:.0f} s per side, {args.clients} clients, HTTP workers x threads: "
          f"old {layout['old']}, new {layout['new']}; load generator's client: old {clients['old']}, "
          f"new {clients['new']}; tasks decided with {args.decide}")
    print("| side | instances/s | CPU ms per instance: server / PostgreSQL / clients |")
    print("|---|---|---|")
    for side in ("old", "new"):
        med = {key: statistics.median(s[key] for s in slices[side]) for key in slices[side][0]}
        print(f"| {side} | {med['rate']:.1f} | {med['server']:.1f} / {med['postgres']:.1f} / {med['clients']:.1f} |")
    for key, label in (("rate", "instances/s"), ("server", "server CPU per instance"),
                       ("postgres", "PostgreSQL CPU per instance"), ("clients", "client CPU per instance")):
        ratios = [n[key] / o[key] for o, n in zip(slices["old"], slices["new"], strict=True)]
        print(f"new/old {label}: median of slice pairs {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    sys.exit(main())
