"""PostgreSQL: an instance's state is stored compressed with lz4 (migration 0017), and a downgrade goes back to pglz.

PostgreSQL compresses a text value of more than about 2 KB before storing it; pglz, its default, costs several
times lz4's CPU for every write of an instance's state (BENCHMARKS.md, "State compression")."""

from __future__ import annotations

import pytest
from alembic import command
from conftest import _postgres_database, bpmn_fixture, deploy, service_missing
from sqlalchemy import create_engine, text

from bpm.adapters.db import alembic_config

EXPENSE = bpmn_fixture("expense_approval.bpmn")
COMPRESSION_OF_COLUMNS = (
    "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute "
    "WHERE attrelid IN ('process_instances'::regclass, 'instance_archive'::regclass) "
    "AND attname IN ('state_json', 'tasks') ORDER BY 1")
LZ4 = {"instance_archive.tasks": "l", "process_instances.state_json": "l"}
PGLZ = {"instance_archive.tasks": "p", "process_instances.state_json": "p"}


def compression_of_columns(connection) -> dict[str, str]:
    return dict(connection.execute(text(COMPRESSION_OF_COLUMNS)).all())


def require_lz4(connection) -> None:
    """The server must have lz4 (PostgreSQL 14+, built with it): the migration keeps pglz otherwise, by design."""
    has_lz4 = connection.execute(text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    if not has_lz4:
        pytest.fail("this PostgreSQL has no lz4 compression: the project's CI server (PostgreSQL 15, Debian) must")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_started_instance_stores_its_state_compressed_with_lz4(client, users, context):
    deploy(client, users["dora"], EXPENSE)
    response = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                           json={"business_key": "LZ4-1", "variables": {"amount": 5000, "note": "x" * 100}})
    assert response.status_code == 201, response.json
    with context.engine.connect() as connection:
        require_lz4(connection)
        assert compression_of_columns(connection) == LZ4
        size, method = connection.execute(text(
            "SELECT octet_length(state_json), pg_column_compression(state_json) FROM process_instances "
            "WHERE business_key = 'LZ4-1'")).one()
    assert size > 2100, f"the state ({size} bytes) is too small for PostgreSQL to compress: the test proves nothing"
    assert method == "lz4"


def test_downgrading_0017_goes_back_to_pglz_and_upgrading_to_lz4_again():
    admin, url, name = _postgres_database()
    if admin is None:
        service_missing(f"PostgreSQL is unreachable: {name}")
    engine = create_engine(url)
    try:
        config = alembic_config(url)
        command.upgrade(config, "0017_state_compressed_lz4")
        with engine.connect() as connection:
            require_lz4(connection)
            assert compression_of_columns(connection) == LZ4
        command.downgrade(config, "0016_update_checked_in_database")
        with engine.connect() as connection:
            assert compression_of_columns(connection) == PGLZ
        command.upgrade(config, "0017_state_compressed_lz4")
        with engine.connect() as connection:
            assert compression_of_columns(connection) == LZ4
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
