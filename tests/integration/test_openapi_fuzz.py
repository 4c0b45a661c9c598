"""A bounded schemathesis run against the app's own OpenAPI document: no operation may answer 5xx.

Each operation gets a few generated requests (valid and invalid bodies, path and query values) as the admin,
the widest principal, through the WSGI app (no network). The budget is small so the run stays in CI time.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from conftest import bpmn_fixture, deploy
from hypothesis import HealthCheck, given, settings
from schemathesis.core.errors import UnsupportedSchema

MAX_EXAMPLES = int(os.environ.get("BPM_FUZZ_EXAMPLES", "10"))
# Operations that change who may call the API would lock the fuzzer out of the rest of the run.
SKIPPED = {("DELETE", "/api/v1/users/{username}/tokens/{token_id}")}


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


def test_no_operation_answers_a_server_error(app, client, users):
    deploy(client, users["dora"], bpmn_fixture("expense_approval.bpmn"))
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures, tried, unsupported = [], 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        try:
            failures += _fuzz(operation, users["admin"])
            tried += 1
        except UnsupportedSchema:
            unsupported.append(f"{operation.method.upper()} {operation.path}")
    print(f"schemathesis: {tried} operations fuzzed, up to {MAX_EXAMPLES} examples each, "
          f"{len(failures)} server errors; schema constructs schemathesis cannot generate: {unsupported}")
    assert tried > 50
    assert not failures, "\n".join(failures[:20])


def _fuzz(operation, headers) -> list[str]:
    found: list[str] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call(headers=headers)
        if response.status_code >= 500:
            found.append(f"{operation.method.upper()} {operation.path} -> {response.status_code}: "
                         f"{case.as_curl_command()}")

    run()
    return found
