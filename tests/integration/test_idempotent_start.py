"""Idempotency-Key on instance start: same key + body -> the same instance (200); other body -> 409."""

from __future__ import annotations

import threading

import pytest
from conftest import bpmn_fixture, deploy

EXPENSE = bpmn_fixture("expense_approval.bpmn")
URL = "/api/v1/process-definitions/expense_approval/instances"


def start(client, headers, key, amount=10, business_key="IDEM-1"):
    return client.post(URL, headers={**headers, "Idempotency-Key": key},
                       json={"business_key": business_key, "variables": {"amount": amount}})


def count_instances(client, users):
    return len(client.get("/api/v1/process-instances", headers=users["admin"]).json)


def test_same_key_and_body_returns_the_same_instance(client, users):
    deploy(client, users["dora"], EXPENSE)
    first = start(client, users["ivan"], "k-1")
    second = start(client, users["ivan"], "k-1")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json["id"] == second.json["id"]
    assert count_instances(client, users) == 1


def test_same_key_with_a_different_body_is_409(client, users):
    deploy(client, users["dora"], EXPENSE)
    assert start(client, users["ivan"], "k-2").status_code == 201
    conflict = start(client, users["ivan"], "k-2", amount=11)
    assert conflict.status_code == 409 and conflict.json["type"].endswith("idempotency-conflict")
    assert count_instances(client, users) == 1


def test_keys_are_per_caller_and_absent_keys_start_new_instances(client, users):
    deploy(client, users["dora"], EXPENSE)
    assert start(client, users["ivan"], "shared").json["id"] != start(client, users["dora"], "shared").json["id"]
    plain = [client.post(URL, headers=users["ivan"], json={"variables": {"amount": 1}}) for _ in range(2)]
    assert plain[0].json["id"] != plain[1].json["id"]
    assert count_instances(client, users) == 4


def test_concurrent_requests_with_one_key_make_one_instance(app, users, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrency is exercised on PostgreSQL (SQLite serialises writers)")
    client = app.test_client()
    deploy(client, users["dora"], EXPENSE)
    results, barrier = [], threading.Barrier(6)

    def request():
        local = app.test_client()
        barrier.wait()
        response = start(local, users["ivan"], "race-key")
        results.append((response.status_code, (response.json or {}).get("id")))

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count_instances(client, users) == 1
    assert all(status in (200, 201, 409) for status, _ in results), results
    assert sum(status == 201 for status, _ in results) == 1
    assert len({instance_id for status, instance_id in results if status in (200, 201)}) == 1
