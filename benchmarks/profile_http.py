"""Sample an HTTP worker of `bpm serve` with py-spy while clients run 3-approval instances over HTTP on PostgreSQL.

    .venv/bin/pip install py-spy   # profiling only; not a project dependency
    .venv/bin/python benchmarks/profile_http.py [--clients 4] [--seconds 12] [--gil]

Starts `bpm serve --workers 1` (granian) with a broker URL on its own database, warms it up, then
records the worker with `py-spy record --format raw` while the load generator of benchmarks/throughput.py runs,
and prints the functions with the largest inclusive share of the samples (the time a request spends waiting
for PostgreSQL shows as psycopg's `Connection.wait`). With --gil, only samples of a thread holding the GIL are
kept: where the worker's Python CPU goes.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from pathlib import Path

from _common import BIN, generate_load, private_database, scratch_dir, seed, start_api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--gil", action="store_true", help="only samples that hold the GIL (Python CPU)")
    args = parser.parse_args()
    with private_database("bench_http_profile") as (url, _name):
        seed(url)
        api = start_api(url, 1, scratch_dir())
        try:
            generate_load([api.port], 2, 3.0)  # warm-up: caches, prepared statements
            [worker] = api.worker_pids()
            output = Path(tempfile.mkdtemp(prefix="bpm-py-spy-")) / "samples.txt"
            spy = subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(worker), "--duration",
                                    str(int(args.seconds)), "--rate", "200", "--format", "raw", "--output",
                                    str(output), *(["--gil"] if args.gil else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            result = generate_load([api.port], args.clients, args.seconds + 2)
            spy.wait()
        finally:
            api.stop()
    print(f"{result.completed} instances by {args.clients} clients in {result.seconds:.1f} s; "
          f"{len(result.errors)} errors; samples in {output}")
    total, shares = inclusive_shares(output)
    print(f"{total} samples; inclusive share of the worker's samples:")
    for name, count in shares.most_common(args.top):
        print(f"{count / total * 100:5.1f}%  {name}")


def inclusive_shares(raw: Path) -> tuple[int, collections.Counter]:
    """py-spy's raw format is one `frame;frame;... count` line per distinct stack."""
    total, shares = 0, collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        for name in {_frame_name(frame) for frame in stack.split(";")}:
            shares[name] += int(count)
    return total, shares


def _frame_name(frame: str) -> str:
    function = frame.split(" (", 1)[0]
    where = re.search(r"\((.*?)(?::\d+)?\)", frame)
    path = where.group(1).split("site-packages/")[-1] if where else ""
    return f"{function} {path.rsplit('/bpm/', 1)[-1] if '/bpm/' in path else path}"


if __name__ == "__main__":
    main()
