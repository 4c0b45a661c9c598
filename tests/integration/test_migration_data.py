"""Migrations that fill new columns from existing rows: a server upgraded with data keeps answering the same."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from alembic import command
from conftest import _postgres_database, service_missing
from sqlalchemy import create_engine, text

from bpm.adapters.db import alembic_config

ROWS = [
    "INSERT INTO process_definitions (id, key, version, name, bpmn_xml, spec_json, model, checksum, deployed_at) "
    "VALUES (1, 'p', 1, 'P', '', '{}', '{}', 'x', '2026-01-05 09:00:00+00')",
    "INSERT INTO process_instances (id, definition_id, process_key, status, state_json, version, started_at) "
    "VALUES ('inst-1', 1, 'p', 'running', '{}', 1, '2026-01-05 09:00:00+00'), "
    "('inst-2', 1, 'p', 'completed', '{}', 1, '2026-01-05 09:00:00+00')",
    "INSERT INTO tasks (id, instance_id, process_key, element_id, name, status, candidate_groups, candidate_users, "
    "priority, created_at) VALUES "
    "('task-1', 'inst-1', 'p', 'a', 'A', 'open', '[\"finance\"]', '[\"ann\"]', 50, '2026-01-05 09:00:00+00'), "
    "('task-2', 'inst-2', 'p', 'a', 'A', 'completed', '[\"finance\"]', '[]', 50, '2026-01-05 09:00:00+00')",
    "INSERT INTO task_candidates (task_id, kind, name, is_open) VALUES "
    "('task-1', 'g', 'finance', true), ('task-1', 'u', 'ann', true), ('task-2', 'g', 'finance', false)",
]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.sqlite'}"
        return
    admin, url, name = _postgres_database()
    if admin is None:
        service_missing(f"PostgreSQL is unreachable: {name}")
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def database_at(url: str, revision: str, rows: list[str]):
    """The database migrated up to `revision` and holding `rows` (INSERT statements): (alembic config, engine)."""
    config = alembic_config(url)
    command.upgrade(config, revision)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in rows:
                connection.execute(text(statement))
        yield config, engine
    finally:
        engine.dispose()


def test_candidate_rows_of_existing_tasks_get_their_instance_on_upgrade_and_lose_it_on_downgrade(empty_database):
    with database_at(empty_database, "0013_tasks_completed_by", ROWS) as (config, engine):
        command.upgrade(config, "0014_task_candidates_instance")
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT task_id, kind, name, instance_id FROM task_candidates ORDER BY task_id, kind")).all()
        assert [tuple(row) for row in rows] == [("task-1", "g", "finance", "inst-1"), ("task-1", "u", "ann", "inst-1"),
                                                ("task-2", "g", "finance", "inst-2")]
        command.downgrade(config, "0013_tasks_completed_by")
        with engine.connect() as connection:
            columns = connection.execute(text("SELECT * FROM task_candidates")).keys()
        assert "instance_id" not in columns and "task_id" in columns


CLAIMED_TASK = [
    "INSERT INTO tasks (id, instance_id, process_key, element_id, name, status, assignee, candidate_groups, "
    "candidate_users, priority, created_at) VALUES ('task-3', 'inst-1', 'p', 'b', 'B', 'open', 'ann', "
    "'[\"finance\"]', '[]', 50, '2026-01-05 09:00:00+00')",
    "INSERT INTO task_candidates (task_id, kind, name, instance_id, is_open) VALUES "
    "('task-3', 'g', 'finance', 'inst-1', true)",
]
OPEN_ROWS = "SELECT task_id FROM task_candidates WHERE is_open ORDER BY task_id, kind"


def test_candidate_rows_of_claimed_tasks_close_on_upgrade_and_reopen_on_downgrade(empty_database):
    """0015: `is_open` means claimable (open and unassigned) and triggers keep it; the downgrade restores "open"."""
    rows = ROWS[:3] + CLAIMED_TASK + [
        "INSERT INTO task_candidates (task_id, kind, name, instance_id, is_open) VALUES "
        "('task-1', 'g', 'finance', 'inst-1', true), ('task-2', 'g', 'finance', 'inst-2', false)"]
    with database_at(empty_database, "0014_task_candidates_instance", rows) as (config, engine):
        command.upgrade(config, "0015_candidates_follow_task")
        with engine.begin() as connection:
            assert list(connection.execute(text(OPEN_ROWS)).scalars()) == ["task-1"]  # task-3 is claimed
            connection.execute(text("UPDATE tasks SET assignee = NULL WHERE id = 'task-3'"))
            assert list(connection.execute(text(OPEN_ROWS)).scalars()) == ["task-1", "task-3"]
            connection.execute(text("UPDATE tasks SET assignee = 'ann' WHERE id = 'task-3'"))
        command.downgrade(config, "0014_task_candidates_instance")
        with engine.begin() as connection:
            assert list(connection.execute(text(OPEN_ROWS)).scalars()) == ["task-1", "task-3"]  # open again
            connection.execute(text("UPDATE tasks SET status = 'completed' WHERE id = 'task-1'"))
            assert list(connection.execute(text(OPEN_ROWS)).scalars()) == ["task-1", "task-3"]  # no trigger left
