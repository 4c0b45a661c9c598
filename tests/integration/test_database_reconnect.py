"""The API survives PostgreSQL dropping its connections (a restart, a failover, an administrator's kill).

Pooled connections idle for longer than `PING_AFTER_IDLE_SECONDS` are pinged before a request gets them, and a
failed ping replaces the whole pool; a connection that dies within that window fails one request with a 503 that
says to retry, and the pool is replaced for the next one.
"""

from __future__ import annotations

import time

import pytest
from conftest import bpmn_fixture, deploy
from sqlalchemy import event, text

from bpm.adapters import db
from bpm.adapters.db import PING_AFTER_IDLE_SECONDS
from bpm.config import Settings

pytestmark = pytest.mark.postgres
EXPENSE = bpmn_fixture("expense_approval.bpmn")


@pytest.fixture
def settings(postgres_url, tmp_path):
    return Settings(database_url=postgres_url, var_dir=tmp_path)


@pytest.fixture
def connects(app):
    """How many database connections the app's pool has opened so far."""
    opened = []
    event.listen(app.extensions["bpm"].engine, "connect", lambda *_: opened.append(1))
    return opened


def drop_every_connection_of(app) -> int:
    engine = app.extensions["bpm"].engine
    with engine.pool._creator().cursor() as cursor:  # a connection outside the pool, killed last
        cursor.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").text)
        killed = len(cursor.fetchall())
        cursor.connection.close()
    return killed


def start(client, headers, key="expense_approval"):
    return client.post(f"/api/v1/process-definitions/{key}/instances", headers=headers,
                       json={"variables": {"amount": 5000}})


def test_requests_after_the_database_dropped_every_connection_succeed(client, users, app, connects):
    assert deploy(client, users["dora"], EXPENSE).status_code == 201
    assert start(client, users["ivan"]).status_code == 201
    opened_before = len(connects)
    assert drop_every_connection_of(app) >= 1
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)  # a restart takes longer than the window
    started = start(client, users["ivan"])
    assert started.status_code == 201, started.json
    task_id = started.json["open_tasks"][0]["id"]
    inbox = client.get("/api/v1/tasks", headers=users["alice"])
    assert inbox.status_code == 200 and task_id in [t["id"] for t in inbox.json["items"]]
    assert len(connects) > opened_before  # the dead connections were replaced, not reused


def test_a_connection_that_died_within_the_window_fails_one_request_with_a_503_and_the_next_succeeds(
        client, users, app, connects, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 60.0)  # however slow this machine, the window holds
    assert deploy(client, users["dora"], EXPENSE).status_code == 201
    assert drop_every_connection_of(app) >= 1
    failed = start(client, users["ivan"])  # the connection was used a moment ago: not pinged
    assert failed.status_code == 503, failed.json
    assert failed.json["type"] == "urn:bpm:problem:database-unavailable"
    assert failed.headers["Retry-After"] == "1"
    retried = start(client, users["ivan"])
    assert retried.status_code == 201, retried.json
    listed = client.get("/api/v1/process-instances", headers=users["ivan"])
    assert listed.status_code == 200 and len(listed.json) == 1  # the failed start wrote nothing
