"""Nothing waits on PostgreSQL for ever: the engines of the api and the workers carry statement, lock and
idle-in-transaction timeouts in their connections' startup options, a request whose row another transaction
holds locked gets a 503 to retry instead of holding its thread, and schema migrations run without the timeouts.
"""

from __future__ import annotations

from contextlib import contextmanager, suppress

import psycopg.errors
import pytest
from conftest import bpmn_fixture, deploy
from sqlalchemy import create_engine, engine_from_config, pool, text
from sqlalchemy.exc import OperationalError

from bpm.adapters.db import alembic_config, make_engine
from bpm.config import DatabaseTimeouts, Settings

pytestmark = pytest.mark.postgres
EXPENSE = bpmn_fixture("expense_approval.bpmn")
SHORT = DatabaseTimeouts(lock=0.2)
# However long a waiter would wait, the holder's session ends after this: a test without a lock timeout fails, it
# does not hang.
HOLD_AT_MOST = "10s"


@contextmanager
def disposed(engine):
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def row_locked(database_url: str, table: str, row_id):
    """Another session holds the row locked (SELECT ... FOR UPDATE in an open transaction) until the block ends,
    or for HOLD_AT_MOST, after which PostgreSQL ends that session."""
    with disposed(create_engine(database_url)) as holder, holder.connect() as connection:
        connection.execute(text(f"SET idle_in_transaction_session_timeout = '{HOLD_AT_MOST}'"))
        connection.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})  # noqa: S608
        yield
        with suppress(OperationalError):  # the session ended after HOLD_AT_MOST: the assertions tell what waited
            connection.rollback()


def shown(engine, *parameters: str) -> list[str]:
    with engine.connect() as connection:
        return [connection.exec_driver_sql(f"SHOW {name}").scalar_one() for name in parameters]


@pytest.fixture
def probe_table(postgres_url):
    with disposed(create_engine(postgres_url)) as admin:
        with admin.begin() as connection:
            connection.execute(text("CREATE TABLE timeout_probe (id int PRIMARY KEY, n int NOT NULL)"))
            connection.execute(text("INSERT INTO timeout_probe VALUES (1, 0)"))
        yield "timeout_probe"
        with admin.begin() as connection:
            connection.execute(text("DROP TABLE timeout_probe"))


def test_an_update_of_a_row_another_transaction_holds_locked_fails_with_lock_not_available(postgres_url,
                                                                                         probe_table):
    update = text("UPDATE timeout_probe SET n = n + 1 WHERE id = 1")
    with disposed(make_engine(postgres_url, timeouts=SHORT)) as engine:
        with row_locked(postgres_url, probe_table, 1), pytest.raises(OperationalError) as raised, \
                engine.begin() as connection:
            connection.execute(update)
        assert isinstance(raised.value.orig, psycopg.errors.LockNotAvailable), raised.value.orig
        with engine.begin() as connection:  # the lock is gone: the same update goes through
            assert connection.execute(update).rowcount == 1


def test_a_made_engine_shows_the_configured_timeouts(postgres_url):
    timeouts = DatabaseTimeouts(statement=1.5, lock=10, idle_in_transaction=60)
    with disposed(make_engine(postgres_url, timeouts=timeouts)) as engine:
        assert shown(engine, "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout") == [
            "1500ms", "10s", "1min"]


def test_the_caller_s_own_startup_options_are_kept_and_win(postgres_url):
    options = {"options": "-c application_name=bpm-probe -c lock_timeout=3000"}
    with disposed(make_engine(postgres_url, timeouts=DatabaseTimeouts(), connect_args=options)) as engine:
        assert shown(engine, "application_name", "lock_timeout", "statement_timeout") == ["bpm-probe", "3s", "30s"]


def test_pgoptions_from_the_environment_are_kept(postgres_url, monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c application_name=from-pgoptions")
    with disposed(make_engine(postgres_url, timeouts=DatabaseTimeouts())) as engine:
        assert shown(engine, "application_name", "statement_timeout") == ["from-pgoptions", "30s"]


def test_migrations_run_without_statement_or_lock_timeout_whatever_pgoptions_says(postgres_url, monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=5000 -c lock_timeout=5000")
    config = alembic_config(postgres_url)
    # the engine the migrations' env.py makes from the alembic configuration
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with disposed(engine):
        assert shown(engine, "statement_timeout", "lock_timeout") == ["0", "0"]


# --- the API ------------------------------------------------------------------------------------------------------


@pytest.fixture
def settings(postgres_url, tmp_path):
    return Settings(database_url=postgres_url, var_dir=tmp_path, database_timeouts=SHORT)


def test_claiming_a_task_whose_row_another_transaction_holds_locked_answers_503_to_retry(client, users,
                                                                                       postgres_url):
    assert deploy(client, users["dora"], EXPENSE).status_code == 201
    started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                          json={"variables": {"amount": 5000}})
    assert started.status_code == 201, started.json
    task_id = started.json["open_tasks"][0]["id"]
    claim = f"/api/v1/tasks/{task_id}/claim"
    with row_locked(postgres_url, "tasks", task_id):
        refused = client.post(claim, headers=users["alice"])
    assert refused.status_code == 503, refused.json
    assert refused.content_type == "application/problem+json"
    assert refused.json["type"] == "urn:bpm:problem:row-locked"
    assert "locked by another operation" in refused.json["detail"] and "retry" in refused.json["detail"]
    assert refused.headers["Retry-After"] == "1"
    claimed = client.post(claim, headers=users["alice"])
    assert claimed.status_code == 200, claimed.json
    assert claimed.json["assignee"] == "alice"


@contextmanager
def table_locked(database_url: str, table: str):
    """Another session holds the whole table locked against readers too (ACCESS EXCLUSIVE), as a schema change
    would, until the block ends or for HOLD_AT_MOST."""
    with disposed(create_engine(database_url)) as holder, holder.connect() as connection:
        connection.execute(text(f"SET idle_in_transaction_session_timeout = '{HOLD_AT_MOST}'"))
        connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        yield
        with suppress(OperationalError):
            connection.rollback()


def test_reads_sent_on_the_driver_that_wait_on_a_lock_answer_503_to_retry(client, users, postgres_url):
    """The completion's load and the inbox page go on psycopg's cursor (bpm.adapters.loaded_rows): their lock
    timeout is raised as SQLAlchemy's own reads raise it, so the API answers as it does for them."""
    assert deploy(client, users["dora"], EXPENSE).status_code == 201
    started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                          json={"business_key": "LOCKED-1", "variables": {"amount": 5000}})
    assert started.status_code == 201, started.json
    task_id = started.json["open_tasks"][0]["id"]
    complete = f"/api/v1/tasks/{task_id}/complete"
    with table_locked(postgres_url, "tasks"):
        refused = [client.post(complete, headers=users["alice"], json={"variables": {"approved": True}}),
                   client.get("/api/v1/tasks?business_key=LOCKED-1", headers=users["alice"])]
    for response in refused:
        assert response.status_code == 503, response.json
        assert response.json["type"] == "urn:bpm:problem:row-locked" and response.headers["Retry-After"] == "1"
    assert client.get("/api/v1/tasks?business_key=LOCKED-1", headers=users["alice"]).json["items"][0]["id"] == task_id
    done = client.post(complete, headers=users["alice"], json={"variables": {"approved": True}})
    assert done.status_code == 200, done.json
