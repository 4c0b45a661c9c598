"""CPU of the API per call, in process: what one 3-approval instance costs the server, call type by call type.

    .venv/bin/python benchmarks/api_cpu.py [--instances 150] [--rounds 5] [--profile PATTERN]
                                           [--against stdlib-json|session-reads|webargs-query]

Runs the calls of benchmarks/throughput.py's clients (POST start, then per approver POST complete and GET the next
approver's inbox filtered by business key: 6 calls per instance) through the Flask app's test client on its own
PostgreSQL database, one thread, no HTTP server, and reports this process's CPU time per instance for each call
type (median of the rounds). Flask, flask-smorest, marshmallow, authentication, the services and the database
driver are all counted; PostgreSQL's own CPU and the HTTP server's are not. With --profile, prints cProfile's
callees of the functions matching PATTERN (a regular expression) for one more round.

With --against, only the app's own CPU is counted (its WSGI call timed, not the test client around it), and each
round runs the instances twice, the order alternating: as shipped, and with one change undone:
- stdlib-json: the API's JSON and dumps as before the sixteenth round (Flask's own JSON provider, marshmallow's own
  attribute lookup in a dump, webargs' own reading of a JSON body, json.loads for an instance's state and the json
  columns; the pool's connections are replaced at each switch);
- session-reads: the inbox's page read on the read-only session's own connection, as before the eighteenth round,
  instead of on a pooled connection of its own (bpm.adapters.loaded_rows);
- webargs-query: the query string read through webargs' MultiDictProxy, as before the eighteenth round (see
  api.blueprints).
A few instances run untimed after each switch. Prints both totals per instance and per inbox page, and the
medians of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import statistics
import time
import uuid
from contextlib import contextmanager, nullcontext

import marshmallow
from _common import BROKER_URL, STARTER, STEP_APPROVER, private_database, seed, token_of
from flask.json.provider import DefaultJSONProvider
from webargs.flaskparser import FlaskParser

from api import create_app, schema_base
from api.blueprints import _SchemaOnceParser
from bpm import json_text
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


def _stdlib_loads(text):
    return json.loads(bytes(text) if isinstance(text, memoryview) else text)


@contextmanager
def session_reads(app):
    """Read-only units of work read the inbox's page and counts on their session's connection, as before the
    eighteenth round, instead of on a pooled connection of their own (bpm.adapters.loaded_rows)."""
    from bpm.adapters.unit_of_work import read_only_session_factory

    context = app.extensions["bpm"]
    saved = context.read_sessions
    context.read_sessions = read_only_session_factory(context.engine)
    try:
        yield
    finally:
        context.read_sessions = saved


@contextmanager
def webargs_query(_app):
    """The query string read through webargs' MultiDictProxy, as before the eighteenth round."""
    saved = _SchemaOnceParser.load_querystring
    _SchemaOnceParser.load_querystring = FlaskParser.load_querystring
    try:
        yield
    finally:
        _SchemaOnceParser.load_querystring = saved


@contextmanager
def stdlib_json(app):
    """The API's JSON and dumps as before the sixteenth round (see the module's docstring)."""
    saved = app.json, schema_base.Schema._serialize, _SchemaOnceParser._raw_load_json, json_text.loads
    provider = DefaultJSONProvider(app)
    provider.ensure_ascii = False
    app.json, schema_base.Schema._serialize = provider, marshmallow.Schema._serialize
    _SchemaOnceParser._raw_load_json, json_text.loads = FlaskParser._raw_load_json, _stdlib_loads
    app.extensions["bpm"].engine.dispose()  # new connections register json.loads for the json columns
    try:
        yield
    finally:
        app.json, schema_base.Schema._serialize, _SchemaOnceParser._raw_load_json, json_text.loads = saved
        app.extensions["bpm"].engine.dispose()


AGAINST = {"stdlib-json": stdlib_json, "session-reads": session_reads, "webargs-query": webargs_query}


def paired(app, client, instances: int, rounds: int, against: str = "stdlib-json") -> None:
    """The app's own CPU per instance (its WSGI call timed, the test client's work around it not), both ways; and
    per inbox page (the GET requests, two per instance)."""
    inside = collections.defaultdict(float)
    application = app.wsgi_app

    def timed(environ, start_response):
        began = time.process_time()
        try:
            return list(application(environ, start_response))
        finally:
            inside[environ["REQUEST_METHOD"]] += time.process_time() - began

    app.wsgi_app = timed
    switch = AGAINST[against]
    totals: dict[str, list[float]] = {"shipped": [], against: []}
    pages: dict[str, list[float]] = {"shipped": [], against: []}
    for number in range(rounds):
        for mode in ("shipped", against)[::1 if number % 2 == 0 else -1]:
            with switch(app) if mode == against else nullcontext():
                measure(client, 5)  # untimed: the new connections prepare their statements
                inside.clear()
                measure(client, instances)
                totals[mode].append(sum(inside.values()) * 1000 / instances)
                pages[mode].append(inside["GET"] * 1e6 / (2 * instances))
    app.wsgi_app = application
    for label, figures, unit in (("API CPU per instance", totals, "ms"), ("API CPU per inbox page", pages, "us")):
        ratios = [new / old for new, old in zip(figures["shipped"], figures[against], strict=True)]
        print(f"{label} (median of {rounds} rounds of {instances} instances): shipped "
              f"{statistics.median(figures['shipped']):.2f} {unit}, {against} "
              f"{statistics.median(figures[against]):.2f} {unit}; shipped / {against}, median of the rounds' ratios "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile")
    parser.add_argument("--against", choices=list(AGAINST))
    args = parser.parse_args()
    with private_database("bench_api_cpu") as (url, _name):
        seed(url)
        app = create_app(Settings(database_url=url, broker_url=BROKER_URL))
        client = app.test_client()
        measure(client, 20)  # warm-up: caches, prepared statements
        if args.against:
            paired(app, client, args.instances, args.rounds, args.against)
            app.extensions["bpm"].engine.dispose()
            return
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
