"""Objects made from a Core row (bpm.adapters.loaded_rows) behave as the ORM's loaded objects: the same values,
one object per row in the session, changes tracked and written with the version check, the columns left out
loaded on first access one at a time, expired by a rollback. On PostgreSQL the rows are read on the driver: the
same rows as SQLAlchemy's execution gives, and a dropped connection handled as SQLAlchemy handles it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import bpmn_fixture, deploy
from sqlalchemy import bindparam, inspect, select, update

from bpm.adapters import loaded_rows
from bpm.adapters.orm import ProcessDefinition, ProcessInstance, Task
from bpm.domain.errors import ConcurrencyConflict
from bpm.services import definitions, tasks

EXPENSE = bpmn_fixture("expense_approval.bpmn")
TASK, INSTANCE = loaded_rows.loaded(Task), loaded_rows.loaded(ProcessInstance)
DEFINITION = definitions.DEFINITION_WITHOUT_TEXTS
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def open_task(client, users) -> dict:
    deploy(client, users["dora"], EXPENSE)
    response = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                           json={"business_key": "LOADED-1", "variables": {"amount": 5000}})
    assert response.status_code == 201, response.json
    return response.json["open_tasks"][0]


def _task_row_statement():
    return (select(*loaded_rows.columns(TASK, INSTANCE, DEFINITION)).select_from(Task)
            .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
            .where(Task.id == bindparam("task_id")))


def _load(uow, task_id: str):
    row = loaded_rows.first_row(uow.session, _task_row_statement(), {"task_id": task_id})
    return loaded_rows.objects(uow.session, row, TASK, INSTANCE, DEFINITION)


def _column_values(row, exclude=()) -> dict:
    return {attr.key: getattr(row, attr.key) for attr in inspect(type(row)).column_attrs if attr.key not in exclude}


def test_the_objects_hold_the_values_the_orm_loads_and_are_clean_members_of_the_session(context, open_task):
    with context.uow() as uow:
        task, instance, definition = _load(uow, open_task["id"])
        assert inspect(task).persistent and inspect(instance).persistent and inspect(definition).persistent
        assert not uow.session.dirty and not uow.session.new
        assert uow.session.get(Task, task.id) is task  # the identity map holds them
        assert uow.session.get(ProcessInstance, instance.id) is instance
        made = {row: _column_values(row, definitions.TEXTS) for row in (task, instance, definition)}
    with context.uow() as uow:
        for row, values in made.items():
            orm_loaded = uow.session.get(type(row), row.id)
            assert _column_values(orm_loaded, definitions.TEXTS) == values


def test_an_object_the_session_holds_is_returned_with_its_changes(context, open_task):
    with context.uow() as uow:
        held = uow.session.get(Task, open_task["id"])
        held.priority = 99
        task, _instance, _definition = _load(uow, open_task["id"])
        assert task is held and task.priority == 99 and task in uow.session.dirty


def test_the_columns_left_out_load_on_first_access_one_at_a_time(context, open_task):
    with context.uow() as uow:
        _task, _instance, definition = _load(uow, open_task["id"])
        state = inspect(definition)
        assert set(definitions.TEXTS) <= state.unloaded
        assert definition.model["user_tasks"]  # loaded now
        assert "model" not in state.unloaded and {"bpmn_xml", "spec_json"} <= state.unloaded
        assert "<bpmn:definitions" in definition.bpmn_xml or "definitions" in definition.bpmn_xml


def test_a_change_is_written_and_the_instance_version_is_checked(context, open_task):
    with context.uow() as uow:
        task, instance, _definition = _load(uow, open_task["id"])
        task.priority, instance.business_key = 77, "LOADED-1b"
        instance_id = instance.id
        uow.commit()
    with context.uow() as uow:
        assert uow.session.get(Task, open_task["id"]).priority == 77
        instance = uow.session.get(ProcessInstance, instance_id)
        assert (instance.business_key, instance.version) == ("LOADED-1b", 2)
    with context.uow() as uow:
        _task, instance, _definition = _load(uow, open_task["id"])
        # The row moves on behind the object's back (as another command's commit would; SQLite's write lock
        # forbids a second writer, so the change is made on this transaction's own connection).
        uow.session.connection().execute(update(ProcessInstance).where(ProcessInstance.id == instance_id)
                                         .values(version=ProcessInstance.version + 1))
        instance.business_key = "LOADED-1c"
        with pytest.raises(ConcurrencyConflict):
            uow.commit()
    with context.uow() as uow:
        assert uow.session.get(ProcessInstance, instance_id).business_key == "LOADED-1b"


def test_a_rollback_expires_the_objects(context, open_task):
    with context.uow() as uow:
        task, _instance, _definition = _load(uow, open_task["id"])
        task.priority = 5
        uow.session.rollback()
        assert "priority" in inspect(task).expired_attributes or "priority" in inspect(task).unloaded
        assert task.priority == open_task["priority"]  # read again


def test_a_null_primary_key_gives_no_object_and_an_unknown_column_is_refused(context):
    with context.uow() as uow:
        assert loaded_rows.objects(uow.session, [None] * TASK.width, TASK) == [None]
    with pytest.raises(ValueError, match="no column attribute texts"):
        loaded_rows.loaded(ProcessDefinition, ["texts"])


def test_a_completion_loads_through_a_core_row(context, open_task, monkeypatch):
    """The completion's load is the Core path: its objects come from loaded_rows, not from the ORM's loading."""
    made = []
    original = loaded_rows.objects

    def spy(session, row, *shapes):
        made.extend(original(session, row, *shapes))
        return made[-len(shapes):]

    monkeypatch.setattr(loaded_rows, "objects", spy)
    with context.uow() as uow:
        task, instance, definition, signers_pending, existing = tasks.load_for_completion(uow, open_task["id"])
    assert made == [task, instance, definition]
    assert (task.id, signers_pending, existing.task_ids) == (open_task["id"], False, [open_task["id"]])


# --- on the driver (PostgreSQL with psycopg) -------------------------------------------------------------------


def _hot_reads(actor, open_task: dict):
    """The statements read on the driver, with their values: the completion's load, the start's definition, the
    projection's existing rows, the inbox page by business key and the default inbox (list parameters of the
    actor's groups), and the inbox counts."""
    from bpm.services import instances, projection

    inbox_by_key, inbox_values = tasks._inbox_query(actor, tasks.TaskQuery(business_key="LOADED-1"), NOW)
    inbox, values = tasks._inbox_query(actor, tasks.TaskQuery(), NOW)
    counts_values = {**tasks._actor_values(actor), "now": NOW}
    return [(tasks.completion_query(), {"task_id": open_task["id"]}),
            (instances._start_query(False), {"key": "expense_approval"}),
            (projection._existing_query(), {"instance_id": open_task["instance_id"]}),
            (inbox_by_key, inbox_values), (inbox, values), (tasks._counts_statement(), counts_values)]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("groups", [[], ["team-leads"], ["team-leads", "finance", "directors"]])
def test_rows_read_on_the_driver_are_those_sqlalchemy_reads(context, open_task, users, groups):
    """The inbox statements take the caller's groups as a list parameter: each length is its own statement."""
    from bpm.domain.model import Actor

    actor = Actor("alice", frozenset({"approver"}), frozenset(groups), None)
    with context.uow() as uow:
        inbox_by_key = loaded_rows.all_rows(uow.session, *_hot_reads(actor, open_task)[3])
        assert [row.id for row in inbox_by_key] == ([open_task["id"]] if "team-leads" in groups else [])
        for statement, values in _hot_reads(actor, open_task):
            ours = loaded_rows.all_rows(uow.session, statement, values)
            theirs = list(uow.session.connection().execute(statement, values))
            assert [tuple(row) for row in ours] == [tuple(row) for row in theirs], statement
            assert all(isinstance(row, loaded_rows.DriverRow) for row in ours)
            for ours_row, their_row in zip(ours, theirs, strict=True):
                assert ours_row._mapping.keys() <= their_row._mapping.keys()
                assert all(getattr(ours_row, key) == their_row._mapping[key] for key in ours_row._mapping)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_connection_dropped_under_a_driver_read_is_invalidated_as_sqlalchemy_does(context, open_task):
    from sqlalchemy import exc, text

    with pytest.raises(exc.OperationalError) as raised, context.uow() as uow:
        connection = uow.session.connection()
        pid = connection.connection.dbapi_connection.info.backend_pid
        with context.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        tasks.load_for_completion(uow, open_task["id"])
    assert raised.value.connection_invalidated  # the pool drops the connection
    with context.uow() as uow:  # the pool hands out a working connection again
        assert tasks.load_for_completion(uow, open_task["id"])[0].id == open_task["id"]


def test_a_driver_row_reads_like_sqlalchemys_row():
    shape = loaded_rows._driver_shape(tasks.completion_query(), ())
    row = shape.row(range(TASK.width + INSTANCE.width + DEFINITION.width + 5))
    assert row[0] == 0 and row[1:3] == (1, 2) and row.signers_pending == TASK.width + INSTANCE.width + DEFINITION.width
    assert row._mapping["webhooks_active"] == row.webhooks_active
    with pytest.raises(AttributeError):
        row.no_such_column  # noqa: B018


def test_a_column_converted_after_the_driver_is_not_read_there():
    from sqlalchemy import literal_column
    from sqlalchemy.types import TypeDecorator, Unicode

    class Upper(TypeDecorator):
        impl, cache_ok = Unicode, True

        def process_result_value(self, value, dialect):
            return value.upper()

    with pytest.raises(ValueError, match="convert their values after the driver"):
        loaded_rows._driver_shape(select(literal_column("'x'", Upper()).label("shout")), ())


def _kept_cursors(uow) -> dict:
    from bpm.adapters import hot_rows

    return getattr(uow.session.connection().connection.dbapi_connection, hot_rows._KEPT)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_read_repeated_on_a_connection_runs_on_its_kept_cursor_with_its_adaptation(context, open_task):
    """psycopg keeps a cursor's adapters (its Transformer) while the same query object runs on it again: the
    server's statements are built once, so their text is the same object each time."""
    statement = _task_row_statement()
    with context.uow() as uow:
        first = loaded_rows.first_row(uow.session, statement, {"task_id": open_task["id"]})
        [(text, cursor)] = [(text, cursor) for text, cursor in _kept_cursors(uow).items() if "FROM tasks" in text]
        adaptation = cursor._tx
        missing = loaded_rows.first_row(uow.session, statement, {"task_id": "no-such-task"})
        again = loaded_rows.first_row(uow.session, statement, {"task_id": open_task["id"]})
        assert _kept_cursors(uow)[text] is cursor and cursor._tx is adaptation
    assert first is not None and missing is None and tuple(again) == tuple(first)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_nested_read_of_the_same_statement_gets_a_cursor_of_its_own(context, open_task):
    from bpm.adapters import hot_rows

    statement, values = "SELECT id FROM tasks WHERE id = %(id)s", {"id": open_task["id"]}
    with context.uow() as uow:
        connection = uow.session.connection()
        with hot_rows.reading(connection, statement, values) as outer:
            with hot_rows.reading(connection, statement, {"id": "no-such-task"}) as inner:
                assert inner is not outer and inner.fetchall() == []
            assert outer.fetchall() == [(open_task["id"],)]  # the outer result was not overwritten
        assert _kept_cursors(uow)[statement] is outer and inner.closed  # one cursor kept per statement


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_failed_read_closes_its_cursor_and_the_least_recently_used_beyond_the_limit_are_closed(context):
    from sqlalchemy import exc

    from bpm.adapters import hot_rows

    with context.uow() as uow:
        connection = uow.session.connection()
        statements = [f"SELECT {number}" for number in range(hot_rows.KEPT_CURSORS + 1)]
        cursors = []
        for statement in statements:
            with hot_rows.reading(connection, statement, None) as cursor:
                cursors.append(cursor)
        kept = _kept_cursors(uow)
        assert list(kept) == statements[1:] and cursors[0].closed and not cursors[1].closed
        failing = "SELECT 1 / 0"
        with pytest.raises(exc.DataError), hot_rows.reading(connection, failing, None):
            pass
        assert failing not in kept
