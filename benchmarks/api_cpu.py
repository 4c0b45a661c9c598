"""CPU of the API per call, in process: what one 3-approval instance costs the server, call type by call type.

    .venv/bin/python benchmarks/api_cpu.py [--instances 150] [--rounds 5] [--profile PATTERN]

Runs the calls of benchmarks/throughput.py's clients (POST start, then per approver POST complete and GET the next
approver's inbox filtered by business key: 6 calls per instance) through the Flask app's test client on its own
PostgreSQL database, one thread, no HTTP server, and reports this process's CPU time per instance for each call
type (median of the rounds). Flask, flask-smorest, marshmallow, authentication, the services and the database
driver are all counted; PostgreSQL's own CPU and the HTTP server's are not. With --profile, prints cProfile's
callees of the functions matching PATTERN (a regular expression) for one more round.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import statistics
import time
import uuid

from _common import BROKER_URL, STARTER, STEP_APPROVER, private_database, seed, token_of

from api import create_app
from bpm.config import Settings

API = "/api/v1"


def run_instance(client, spent: dict[str, float]) -> None:
    def call(kind: str, method: str, path: str, user: str, body=None) -> dict:
        began = time.process_time()
        response = client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {token_of(user)}"})
        spent[kind] += time.process_time() - began
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{kind}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response.get_json()

    business_key = uuid.uuid4().hex
    detail = call("start", "POST", f"{API}/process-definitions/three_approvals/instances", STARTER,
                  {"business_key": business_key, "variables": {"amount": 5000}})
    task = detail["open_tasks"][0]
    for step, following in enumerate(("approve_b", "approve_c", None)):
        call("complete", "POST", f"{API}/tasks/{task['id']}/complete", STEP_APPROVER[task["element_id"]],
             {"variables": {"approved": True}})
        if following is None:
            return
        page = call("inbox", "GET", f"{API}/tasks?business_key={business_key}", STEP_APPROVER[following])
        task = page["items"][0]
        assert task["element_id"] == following, (step, task)


def measure(client, instances: int) -> dict[str, float]:
    spent: dict[str, float] = collections.defaultdict(float)
    for _ in range(instances):
        run_instance(client, spent)
    return {kind: seconds * 1000 / instances for kind, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile")
    args = parser.parse_args()
    with private_database("bench_api_cpu") as (url, _name):
        seed(url)
        app = create_app(Settings(database_url=url, broker_url=BROKER_URL))
        client = app.test_client()
        measure(client, 20)  # warm-up: caches, prepared statements
        rounds = [measure(client, args.instances) for _ in range(args.rounds)]
        kinds = ("start", "complete", "inbox")
        medians = {kind: statistics.median(r[kind] for r in rounds) for kind in kinds}
        total = statistics.median(sum(r.values()) for r in rounds)
        print(f"API CPU ms per instance (median of {args.rounds} rounds of {args.instances}): "
              + ", ".join(f"{kind} {medians[kind]:.2f}" for kind in kinds) + f", total {total:.2f}")
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            measure(client, args.instances)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_callees(args.profile)
        app.extensions["bpm"].engine.dispose()


if __name__ == "__main__":
    main()
