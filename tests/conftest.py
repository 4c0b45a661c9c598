"""Shared fixtures: a migrated database per backend, the app, a manual clock, and users with tokens.

The SQLite tier always runs. The PostgreSQL tier runs when the server at BPM_TEST_POSTGRES_URL (default
127.0.0.1:5432, database `test`) is reachable; without it the tier is skipped with a loud reason, and with
CI=true or BPM_REQUIRE_SERVICES=1 a missing server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from api import create_app
from bpm.adapters.db import migrate
from bpm.adapters.orm import Base, load_all_models
from bpm.clock import ManualClock
from bpm.config import Settings
from bpm.services import definitions, identity

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BPM_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("CI") == "true" or os.environ.get("BPM_REQUIRE_SERVICES") == "1"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def service_missing(reason: str):
    """Skip loudly on a developer machine; fail in CI, where every service must be there."""
    message = f"SERVICE MISSING: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (required because CI=true or BPM_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def _postgres_database():
    """Create a private database for this test session so parallel runs never share tables."""
    name = f"bpm_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any connection failure means the tier cannot run
        return None, None, str(error).split("\n")[0]
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return admin, f"{base}/{name}", name


@pytest.fixture(scope="session")
def postgres_url():
    admin, url, name = _postgres_database()
    if admin is None:
        service_missing(f"PostgreSQL at {POSTGRES_URL} is unreachable: {name}")
    migrate(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'bpm.sqlite'}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings(database_url=database_url, var_dir=tmp_path, max_upload_bytes=2_000_000)


@pytest.fixture
def app(settings, clock):
    application = create_app(settings, clock=clock)
    application.config["TESTING"] = True
    yield application
    context = application.extensions["bpm"]
    _truncate(context.engine)
    context.engine.dispose()
    definitions.clear_runtime_cache()
    identity.clear_actor_cache()


def _truncate(engine) -> None:
    load_all_models()
    existing = set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in existing:
                connection.execute(table.delete())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def context(app):
    return app.extensions["bpm"]


STANDARD_USERS = {
    "admin": (["admin"], []),
    "dora": (["designer"], []),
    "ivan": (["integrator"], []),
    "alice": (["approver"], ["team-leads"]),
    "bob": (["approver"], ["finance"]),
    "carol": (["approver"], ["directors"]),
    "eve": (["approver"], ["outsiders"]),
    "nobody": ([], []),
}


@pytest.fixture
def users(context):
    """Users with known tokens; returns username -> request headers."""
    headers = {}
    for username, (roles, groups) in STANDARD_USERS.items():
        identity.create_user(identity.CreateUser(username, username.title(), None, groups, roles), context.uow())
        _, token = identity.issue_token(identity.IssueToken(username, "test"), context.uow())
        headers[username] = {"Authorization": f"Bearer {token}"}
    return headers


def bpmn_fixture(name: str) -> bytes:
    return (FIXTURES / "bpmn" / name).read_bytes()


def deploy(client, headers, data: bytes, filename: str = "process.bpmn"):
    from io import BytesIO

    return client.post("/api/v1/process-definitions", headers=headers,
                       data={"file": (BytesIO(data), filename)}, content_type="multipart/form-data")
