"""Database failures a client can act on get their own answers: retry later (503) or retry now (409)."""

from __future__ import annotations

import psycopg.errors as pg
import pytest
from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError

from api import errors


@pytest.fixture
def client():
    app = Flask(__name__)
    errors.init_app(app)
    raised = {
        "deadlock": OperationalError("UPDATE tasks", {}, pg.DeadlockDetected("deadlock detected")),
        "serialization": OperationalError("UPDATE tasks", {}, pg.SerializationFailure("could not serialize")),
        "shutdown": OperationalError("SELECT 1", {}, pg.AdminShutdown("terminating connection")),
        "unreachable": OperationalError("SELECT 1", {}, pg.OperationalError("connection refused")),
        "timeout": OperationalError("SELECT 1", {}, pg.QueryCanceled("canceling statement due to statement timeout")),
        "locked": OperationalError("UPDATE tasks", {}, pg.LockNotAvailable("canceling statement due to lock timeout")),
        "undefined": OperationalError("SELECT 1", {}, pg.UndefinedFile("could not open file")),
        "duplicate": IntegrityError("INSERT INTO tasks", {}, pg.UniqueViolation("duplicate key")),
    }
    for name, error in raised.items():
        app.add_url_rule(f"/{name}", name, lambda error=error: (_ for _ in ()).throw(error))
    return app.test_client()


@pytest.mark.parametrize("path", ["/shutdown", "/unreachable"])
def test_a_database_that_is_down_or_dropped_the_connection_is_a_503_to_retry_later(client, path):
    response = client.get(path)
    assert response.status_code == 503
    assert response.json["type"] == "urn:bpm:problem:database-unavailable"
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("path", ["/deadlock", "/serialization"])
def test_a_transaction_the_database_aborted_for_a_concurrent_one_is_a_409_to_retry(client, path):
    response = client.get(path)
    assert response.status_code == 409
    assert response.json["type"] == "urn:bpm:problem:concurrency-conflict"
    assert "nothing was applied" in response.json["detail"]


@pytest.mark.parametrize(("path", "type_", "says"), [
    ("/timeout", "urn:bpm:problem:database-timeout", "the database did not answer in time"),
    ("/locked", "urn:bpm:problem:row-locked", "the row is locked by another operation"),
])
def test_a_statement_or_lock_wait_that_timed_out_is_a_503_to_retry_later(client, path, type_, says):
    response = client.get(path)
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.json["type"] == type_ and response.json["status"] == 503
    assert says in response.json["detail"] and "retry" in response.json["detail"]
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("path", ["/undefined", "/duplicate"])
def test_other_database_errors_stay_unexpected(client, path):
    response = client.get(path)
    assert response.status_code == 500
    assert response.json["detail"] == "an unexpected error occurred; it has been logged"
