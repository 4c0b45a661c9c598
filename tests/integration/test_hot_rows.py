"""PostgreSQL: a command's instances and tasks are written beside the ORM's flush (bpm.adapters.hot_rows), with
the flush's semantics: the same rows, the version check, the model's defaults, one transaction with the rest."""

from __future__ import annotations

import uuid

import pytest
from conftest import START, bpmn_fixture, deploy
from sqlalchemy import event, inspect, select, text
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

import bpm.adapters.unit_of_work as unit_of_work
from bpm.adapters.orm import HistoryEntry, ProcessInstance, Task, Timer
from bpm.domain.errors import ConcurrencyConflict

EXPENSE = bpmn_fixture("expense_approval.bpmn")
HOT_WRITES = ("UPDATE process_instances", "INSERT INTO process_instances", "UPDATE tasks", "INSERT INTO tasks",
              "INSERT INTO history", "INSERT INTO instance_archive", "WITH recipients")
TASK_COLUMNS = ("status", "process_key", "element_id", "name", "assignee", "candidate_groups", "candidate_users",
                "priority", "form_key", "completed_by", "owner", "delegation_state")

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def statements(context):
    """The statements that pass through SQLAlchemy, in order."""
    seen: list[str] = []

    def keep(_connection, _cursor, statement, *_rest):
        seen.append(" ".join(statement.split()))

    event.listen(context.engine, "before_cursor_execute", keep)
    yield seen
    event.remove(context.engine, "before_cursor_execute", keep)


def start(client, users, business_key: str) -> dict:
    response = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                           json={"business_key": business_key, "variables": {"amount": 5000}})
    assert response.status_code == 201, response.json
    return response.json


def complete(client, users, task_id: str) -> None:
    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=users["alice"],
                           json={"variables": {"approved": True}})
    assert response.status_code == 200, response.json


def rows_of(context, business_key: str) -> dict:
    """The case's instance and tasks as the database holds them, without ids and times."""
    instance_columns = (ProcessInstance.status, ProcessInstance.version, ProcessInstance.process_key,
                        ProcessInstance.started_by, ProcessInstance.incident, ProcessInstance.ended_at.is_(None))
    task_columns = [getattr(Task, name) for name in TASK_COLUMNS] + [Task.completed_at.is_(None),
                                                                      Task.claimed_at.is_(None)]
    with context.engine.connect() as connection:
        instance = connection.execute(select(*instance_columns).where(
            ProcessInstance.business_key == business_key)).one()
        tasks = connection.execute(select(*task_columns).where(Task.business_key == business_key)
                                   .order_by(Task.created_at, Task.element_id)).all()
        history = connection.execute(
            select(HistoryEntry.event, HistoryEntry.actor, HistoryEntry.element_id, HistoryEntry.element_name,
                   HistoryEntry.data["variables"]).join(ProcessInstance, ProcessInstance.id == HistoryEntry.instance_id)
            .where(ProcessInstance.business_key == business_key).order_by(HistoryEntry.id)).all()
        candidates = connection.execute(text(
            "SELECT c.kind, c.name, c.is_open FROM task_candidates c JOIN tasks t ON t.id = c.task_id "
            "WHERE t.business_key = :key ORDER BY t.created_at, c.kind, c.name"), {"key": business_key}).all()
    return {"instance": tuple(instance), "tasks": [tuple(row) for row in tasks], "candidates": candidates,
            "history": [tuple(row) for row in history]}


def test_a_start_and_a_completion_write_their_instance_and_tasks_outside_sqlalchemy(client, users, context,
                                                                                  statements):
    deploy(client, users["dora"], EXPENSE)
    statements.clear()
    instance = start(client, users, "HOT-1")
    assert instance["open_tasks"][0]["priority"] == 50
    complete(client, users, instance["open_tasks"][0]["id"])
    assert [sql for sql in statements if sql.startswith(HOT_WRITES)] == []
    # so do the hot reads, the start's definition and the completion's load (bpm.adapters.loaded_rows)
    assert not any(sql.startswith(("SELECT process_definitions.id", "SELECT tasks.id")) for sql in statements)
    with context.engine.connect() as connection:
        events = connection.execute(text("SELECT event FROM history WHERE instance_id = :id ORDER BY id"),
                                    {"id": instance["id"]}).scalars().all()
    assert any(sql.startswith("SELECT event FROM history") for sql in statements)  # the recorder sees SQLAlchemy's
    assert events[0] == "instance.started" and "task.completed" in events
    with context.engine.connect() as connection:  # the new tasks' candidates got their in-app notifications
        notified = connection.execute(text("SELECT username, link FROM notifications ORDER BY id")).all()
    opened = [f"/tasks/{task['id']}" for task in instance["open_tasks"]]
    assert ("alice", opened[0]) in notified and len(notified) >= 2


def test_the_rows_are_those_the_orm_flush_writes(client, users, context, monkeypatch):
    deploy(client, users["dora"], EXPENSE)
    for business_key, hot in (("BY-HOT-ROWS", True), ("BY-FLUSH", False)):
        if not hot:
            monkeypatch.setattr(unit_of_work, "queue_hot_rows", lambda _session: None)
            monkeypatch.setattr(unit_of_work, "insert_rows", lambda _session, _table, _rows: False)
        instance = start(client, users, business_key)
        complete(client, users, instance["open_tasks"][0]["id"])
    by_hot_rows, by_flush = rows_of(context, "BY-HOT-ROWS"), rows_of(context, "BY-FLUSH")
    assert by_hot_rows == by_flush
    assert by_hot_rows["instance"][:2] == ("running", 2)
    assert sorted(row[0] for row in by_hot_rows["tasks"]) == ["completed", "open"]
    assert [row[1:] for row in by_hot_rows["history"] if row[0] == "task.completed"] == [
        ("alice", instance["open_tasks"][0]["element_id"], instance["open_tasks"][0]["name"], {"approved": True})]


def test_a_stale_version_is_a_conflict_and_nothing_of_the_command_is_written(client, users, context):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users, "STALE")["id"]
    first, second = context.uow(), context.uow()
    with first, second:
        mine, theirs = (uow.session.get(ProcessInstance, instance_id) for uow in (first, second))
        task = second.session.scalars(select(Task).where(Task.instance_id == instance_id)).one()
        mine.status = "suspended"
        first.commit()
        theirs.status, task.priority = "cancelled", 99
        with pytest.raises(ConcurrencyConflict):
            second.commit()
    with context.uow() as uow:
        assert uow.session.get(ProcessInstance, instance_id).status == "suspended"
        assert uow.session.get(ProcessInstance, instance_id).version == 2
        assert uow.session.scalars(select(Task.priority).where(Task.instance_id == instance_id)).one() == 50


def test_a_later_failure_of_the_same_commit_takes_the_rows_back(client, users, context):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users, "FAILS-LATER")["id"]
    with pytest.raises(IntegrityError, match="timers_instance_id_fkey"), context.uow() as uow:
        uow.session.get(ProcessInstance, instance_id).status = "suspended"
        uow.session.add(Timer(instance_id=str(uuid.uuid4()), task_id="t", element_id="e", kind="boundary",
                              due_at=START, created_at=START))  # its instance does not exist: the flush fails
        uow.commit()
    with context.uow() as uow:
        row = uow.session.get(ProcessInstance, instance_id)
        assert (row.status, row.version) == ("running", 1)


def test_written_objects_are_persistent_clean_and_carry_the_model_defaults(client, users, context, statements):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users, "DEFAULTS")["id"]
    task_id = str(uuid.uuid4())
    with context.uow() as uow:
        instance = uow.session.get(ProcessInstance, instance_id)
        instance.status = "suspended"
        task = Task(id=task_id, instance_id=instance_id, process_key="expense_approval", element_id="extra",
                    status="open", created_at=START)
        uow.session.add(task)
        uow.commit()
        statements.clear()
        assert (task.name, task.priority, task.candidate_groups, task.candidate_users) == ("", 50, [], [])
        assert (task.assignee, task.completed_at, instance.version) == (None, None, 2)
        assert statements == []  # nothing was left to load
        for row in (task, instance):
            assert inspect(row).persistent and not inspect(row).committed_state
        assert not uow.session.dirty and not uow.session.new
        task.priority = 10  # written again in the same unit of work, from its new committed state
        instance.status = "running"
        uow.commit()
    with context.uow() as uow:
        stored = uow.session.get(Task, task_id)
        assert (stored.name, stored.priority, stored.candidate_groups) == ("", 10, [])
        assert (uow.session.get(ProcessInstance, instance_id).status,
                uow.session.get(ProcessInstance, instance_id).version) == ("running", 3)


def test_a_deleted_task_leaves_the_commit_to_the_flush(client, users, context, statements):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users, "DELETES")["id"]
    with context.uow() as uow:
        task = uow.session.scalars(select(Task).where(Task.instance_id == instance_id)).one()
        uow.session.get(ProcessInstance, instance_id).status = "suspended"
        uow.session.delete(task)
        statements.clear()
        uow.commit()
    assert any(sql.startswith("DELETE FROM tasks") for sql in statements)
    assert any(sql.startswith("UPDATE process_instances") for sql in statements)
    with context.uow() as uow:
        assert uow.session.scalars(select(Task).where(Task.instance_id == instance_id)).all() == []
        assert uow.session.get(ProcessInstance, instance_id).status == "suspended"


def test_json_values_are_stored_as_the_orm_stores_them(client, users, context, monkeypatch):
    """An incident set, then cleared with None (JSON null, as the ORM's JSON type writes it), by each path."""
    deploy(client, users["dora"], EXPENSE)
    stored = {}
    for path in ("hot rows", "flush"):
        if path == "flush":
            monkeypatch.setattr(unit_of_work, "queue_hot_rows", lambda _session: None)
        instance_id = start(client, users, f"JSON-{path}")["id"]
        kinds = []
        for incident in ({"incident_id": 7, "why": ["a", "b"]}, None):
            with context.uow() as uow:
                uow.session.get(ProcessInstance, instance_id).incident = incident
                uow.commit()
            with context.engine.connect() as connection:
                kinds.append(connection.execute(text(
                    "SELECT jsonb_typeof(incident), incident IS NULL, incident ->> 'incident_id' "
                    "FROM process_instances WHERE id = :id"), {"id": instance_id}).one())
        stored[path] = kinds
    assert stored["hot rows"] == stored["flush"]
    assert stored["hot rows"][0] == ("object", False, "7")


def test_appended_rows_are_sent_on_the_driver(client, users, context, statements):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users, "APPENDED")["id"]
    statements.clear()
    with context.uow() as uow:
        for event_name in ("note.one", "note.two"):
            uow.append_row(HistoryEntry.__table__, {"instance_id": instance_id, "at": START, "event": event_name})
        uow.commit()
    assert statements == []
    with context.engine.connect() as connection:
        assert connection.execute(select(HistoryEntry.event, HistoryEntry.data).where(
            HistoryEntry.instance_id == instance_id, HistoryEntry.event.like("note.%")).order_by(
            HistoryEntry.id)).all() == [("note.one", {}), ("note.two", {})]


def test_a_long_run_of_appended_rows_is_written_in_inserts_of_at_most_100_rows_in_order(client, users, context,
                                                                                        monkeypatch):
    from bpm.adapters import hot_rows

    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users, "APPENDED-MANY")["id"]
    sent = []
    original = hot_rows._insert_rows_sql
    monkeypatch.setattr(hot_rows, "_insert_rows_sql",
                        lambda table, names, count: sent.append(count) or original(table, names, count))
    with context.uow() as uow:
        for number in range(250):
            uow.append_row(HistoryEntry.__table__, {"instance_id": instance_id, "at": START, "event": "note.many",
                                                    "data": {"n": number}})
        uow.commit()
    assert sent == [100, 100, 50]
    with context.engine.connect() as connection:
        numbers = connection.execute(select(HistoryEntry.data["n"].as_integer()).where(
            HistoryEntry.instance_id == instance_id, HistoryEntry.event == "note.many").order_by(
            HistoryEntry.id)).scalars().all()
    assert numbers == list(range(250))


@pytest.mark.parametrize("names", [([], ["finance"]), (["eve", "nobody"], ["finance", "directors"]), ([], [])])
def test_a_statement_compiled_for_the_driver_is_the_one_sqlalchemy_sends(context, users, statements, names):
    """A new task's fan-out (its recipients' in-app rows and outbox messages) queued for the driver: the same text
    as SQLAlchemy's for lists of those lengths, so PostgreSQL keeps one cached plan per shape, and the same rows."""
    from bpm.adapters import hot_rows
    from bpm.services.notifications import _fan_out_sql, _fan_out_statement

    user_names, groups = names
    values = {"users": user_names, "groups": groups, "title_en": "t", "title_zh": "t", "body": "b", "link": None,
              "created_at": START, "reason": "task_created", "kinds": ["webhook", "wecom"]}
    facts = {"name": "t", "task_id": "t-1"}
    with context.uow() as uow:  # not committed: rolled back
        uow.session.execute(_fan_out_statement(emails=True, robots=True), {**values, "facts": facts})
        sent = statements[-1]
        by_sqlalchemy = _fanned_out(uow)
    on_driver = _fan_out_sql(len(user_names), len(groups), True, True)
    with context.uow() as uow:
        assert hot_rows.queue_statement(uow.session, on_driver, {**values, "facts": facts}, json_values=("facts",))
        assert _fanned_out(uow) == ([], [])  # queued, not sent yet
        uow.flush()
        assert _fanned_out(uow) == by_sqlalchemy
    assert " ".join(on_driver.text.split()) == sent
    expected = sorted({"eve", "nobody", "bob", "carol"} & set(user_names + ["bob"] * ("finance" in groups)
                                                              + ["carol"] * ("directors" in groups)))
    assert by_sqlalchemy[0] == expected
    assert by_sqlalchemy[1] == [(kind, {"reason": "task_created", "facts": facts, "recipients": expected})
                                for kind in ("webhook", "wecom")]


def _fanned_out(uow) -> tuple[list, list]:
    """The usernames of the in-app rows and the (kind, payload) of the outbox messages, in the order written."""
    from bpm.adapters.orm_outbox import Notification, OutboxMessage

    return (list(uow.session.scalars(select(Notification.username).order_by(Notification.id))),
            [tuple(row) for row in uow.session.execute(select(OutboxMessage.kind, OutboxMessage.payload)
                                                       .order_by(OutboxMessage.id))])


def test_an_approvers_decision_is_written_on_the_driver_with_the_key_the_database_gives(
        client, users, context, statements):
    deploy(client, users["dora"], EXPENSE)
    instance = start(client, users, "APPROVED")
    statements.clear()
    response = client.post(f"/api/v1/tasks/{instance['open_tasks'][0]['id']}/approve", headers=users["alice"],
                           json={"opinion": "fine"})
    assert response.status_code == 200, response.json
    assert [sql for sql in statements if sql.startswith(("INSERT INTO approval_records", *HOT_WRITES))] == []
    with context.engine.connect() as connection:
        records = connection.execute(text("SELECT id, actor, outcome, opinion FROM approval_records "
                                          "WHERE instance_id = :id"), {"id": instance["id"]}).all()
    assert [tuple(record)[1:] for record in records] == [("alice", "approved", "fine")] and records[0][0] > 0
    from bpm.services.approvals import approval_trail

    with context.uow() as uow:
        assert [(step["actor"], step["opinion"]) for step in approval_trail(uow, instance["id"])] == [("alice", "fine")]


RENAME = "UPDATE tasks SET name=%(name)s::VARCHAR WHERE tasks.id = %(id)s::VARCHAR"


def rename_on_driver(connection, task_id: str, name: str):
    from bpm.adapters import hot_rows

    matched = []
    hot_rows.send_statements(connection, [(RENAME, {"name": name, "id": task_id}, matched.append)])
    return matched


def ours(dbapi_connection) -> list[bytes]:
    """The names the rename statement is prepared under on the connection, in psycopg's map."""
    from bpm.adapters import hot_rows

    text_sent = hot_rows._numbered(RENAME)[0]
    return [name for (query, _types), name in dbapi_connection._prepared._names.items() if query == text_sent]


def test_statements_sent_in_a_pipeline_are_prepared_once_and_prepared_again_after_psycopg_deallocates_them(
        client, users, context):
    """psycopg deallocates every prepared statement of a connection on a rollback, after DDL, and one by one when
    its map is full; a statement of the pipeline is then prepared again instead of failing."""
    deploy(client, users["dora"], EXPENSE)
    task_id = start(client, users, "PIPELINE")["open_tasks"][0]["id"]
    with context.engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        connection.execute(text("SELECT 1"))  # in a transaction now
        assert rename_on_driver(connection, task_id, "First")[0].rowcount == 1
        [name] = ours(dbapi_connection)
        assert rename_on_driver(connection, task_id, "Second")[0].rowcount == 1
        assert ours(dbapi_connection) == [name]  # executed again under the same name, not prepared again
        connection.rollback()  # psycopg: DEALLOCATE ALL
        assert ours(dbapi_connection) == []
        connection.execute(text("SELECT 1"))
        assert rename_on_driver(connection, task_id, "Third")[0].rowcount == 1
        connection.commit()
        assert len(ours(dbapi_connection)) == 1 and ours(dbapi_connection) != [name]

        connection.execute(text("CREATE TEMPORARY TABLE scratch (id integer)"))
        connection.execute(text("DROP TABLE scratch"))  # psycopg: DEALLOCATE ALL after DDL
        assert ours(dbapi_connection) == []
        assert rename_on_driver(connection, task_id, "Fourth")[0].rowcount == 1
        connection.commit()

        dbapi_connection._prepared.prepared_max = 2
        for number in range(40):  # psycopg prepares each at its sixth run and evicts the oldest, ours among them
            for _ in range(6):
                connection.execute(text(f"SELECT {number} + :n"), {"n": 1})
        assert ours(dbapi_connection) == []
        assert rename_on_driver(connection, task_id, "Fifth")[0].rowcount == 1
        connection.commit()
    with context.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM tasks WHERE id = :id"), {"id": task_id}).scalar() == "Fifth"


def test_a_failed_statement_of_a_pipeline_is_raised_as_sqlalchemy_raises_it_and_nothing_of_it_stays(
        client, users, context):
    deploy(client, users["dora"], EXPENSE)
    task_id = start(client, users, "PIPELINE-FAIL")["open_tasks"][0]["id"]
    from bpm.adapters import hot_rows

    with context.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        with pytest.raises(IntegrityError) as raised:
            hot_rows.send_statements(connection, [
                (RENAME, {"name": "Renamed", "id": task_id}, None),
                ("UPDATE tasks SET instance_id=%(instance)s::VARCHAR WHERE tasks.id = %(id)s::VARCHAR",
                 {"instance": "no-such-instance", "id": task_id}, None)])
        assert "instance_id" in str(raised.value)
        connection.rollback()
        with pytest.raises(sqlalchemy_exc.ProgrammingError):  # a prepare that fails stands for its statement
            connection.execute(text("SELECT 1"))
            hot_rows.send_statements(connection, [("UPDATE tasks SET no_such_column=%(x)s", {"x": 1}, None)])
        connection.rollback()
    with context.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM tasks WHERE id = :id"), {"id": task_id}).scalar() != "Renamed"


def test_a_stale_version_is_raised_even_when_a_later_statement_of_the_pipeline_failed(client, users, context):
    """A concurrent command changed the instance first: its versioned UPDATE matches no row, and the task rows
    sent after it in the same round trip may fail because of that; the command still ends as a conflict."""
    from bpm.adapters import hot_rows

    deploy(client, users["dora"], EXPENSE)
    instance = start(client, users, "PIPELINE-STALE")

    def one_row(result):
        if result.rowcount != 1:
            raise StaleDataError("stale")

    with context.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        with pytest.raises(StaleDataError):
            hot_rows.send_statements(connection, [
                ("UPDATE process_instances SET status=%(status)s::VARCHAR WHERE process_instances.id = "
                 "%(id)s::VARCHAR AND process_instances.version = %(version)s::INTEGER",
                 {"status": "running", "id": instance["id"], "version": 999}, one_row),
                ("UPDATE tasks SET instance_id=%(instance)s::VARCHAR WHERE tasks.id = %(id)s::VARCHAR",
                 {"instance": "no-such-instance", "id": instance["open_tasks"][0]["id"]}, None)])
        connection.rollback()


@pytest.mark.parametrize("due_date", [False, True], ids=["no-due-date", "due-date"])
def test_a_completions_begin_writes_and_commit_go_to_the_database_in_one_round_trip(client, users, context, tmp_path,
                                                                                    due_date):
    """libpq's trace of the completion's connection: two round trips, the load, then BEGIN, the writes and COMMIT
    in one pipeline; no BEGIN or COMMIT on its own. A task with a due date also cancels its waiting escalation
    steps, in the same pipeline."""

    from bpm.services import tasks

    deploy(client, users["dora"], EXPENSE)
    task_id = start(client, users, f"ONE-TRIP-{due_date}")["open_tasks"][0]["id"]
    with context.engine.begin() as connection:
        connection.execute(text("DELETE FROM task_deadlines WHERE task_id = :id"), {"id": task_id})
        if due_date:  # two waiting steps, as a policy of reminders would plan them
            connection.execute(text(
                "INSERT INTO task_deadlines (task_id, instance_id, kind, due_at, status, fired_count, policy, "
                "created_at) SELECT id, instance_id, kind, due_at, 'waiting', 0, '{}', created_at FROM tasks, "
                "(VALUES ('remind'), ('overdue')) AS steps (kind) WHERE id = :id"), {"id": task_id})
        else:
            connection.execute(text("UPDATE tasks SET due_at = NULL WHERE id = :id"), {"id": task_id})
    alice = _actor(context, users, "alice")
    messages = _frontend_messages(context, tmp_path, lambda: tasks.complete_task(
        tasks.CompleteTask(task_id, alice, {"approved": True}), context.uow()))
    syncs = [number for number, message in enumerate(messages) if message[0] == "Sync"]
    pipeline = messages[syncs[0] + 1:syncs[1]]
    assert len(syncs) == 2 and syncs[-1] == len(messages) - 1, messages  # the load, then the writes; nothing after
    assert [message for message in messages if message[-1].startswith((' "" "BEGIN"', ' "" "COMMIT"', ' "BEGIN"',
                                                                        ' "COMMIT"'))] == [
        ("Parse", ' "" "BEGIN" 0'), ("Parse", ' "" "COMMIT" 0')], messages
    assert pipeline[0] == ("Parse", ' "" "BEGIN" 0') and ("Parse", ' "" "COMMIT" 0') in pipeline[-5:], pipeline
    executed = [message for message in pipeline if message[0] == "Execute"]
    # BEGIN, instance, the two tasks, history, the new task's fan-out, (the steps' cancel,) COMMIT
    assert len(executed) >= (8 if due_date else 7), pipeline
    cancels = [message for message in pipeline if message[0] == "Parse" and "task_deadlines" in message[1]]
    assert len(cancels) <= 1 and not [message for message in messages[:syncs[0]] if "task_deadlines" in message[1]]
    with context.engine.connect() as connection:
        assert connection.execute(select(Task.status).where(Task.id == task_id)).scalar_one() == "completed"
        statuses = connection.execute(text("SELECT status FROM task_deadlines WHERE task_id = :id"),
                                      {"id": task_id}).scalars().all()
    assert statuses == (["cancelled", "cancelled"] if due_date else [])


def test_an_approve_reads_the_approval_trail_in_its_loads_round_trip(client, users, context, tmp_path):
    """libpq's trace of an approve's connection: two round trips, as a completion's (the load, then the writes
    with BEGIN and COMMIT), the instance's approval records read in the load's (approvals._trail_column)."""

    from bpm.services import approvals

    deploy(client, users["dora"], EXPENSE)
    task_id = start(client, users, "TRAIL-ONE-TRIP")["open_tasks"][0]["id"]
    alice = _actor(context, users, "alice")
    messages = _frontend_messages(context, tmp_path, lambda: approvals.decide(
        approvals.Decide(task_id, alice, "approved", "fine"), context.uow()))
    syncs = [number for number, message in enumerate(messages) if message[0] == "Sync"]
    assert len(syncs) == 2 and syncs[-1] == len(messages) - 1, messages
    with context.engine.connect() as connection:
        assert connection.execute(select(Task.status).where(Task.id == task_id)).scalar_one() == "completed"
        trail = connection.execute(text("SELECT state_json FROM process_instances p JOIN tasks t "
                                        "ON t.instance_id = p.id WHERE t.id = :id"), {"id": task_id}).scalar_one()
    assert '"approvals": [{' in trail and '"opinion": "fine"' in trail


def _frontend_messages(context, tmp_path, command) -> list[tuple[str, ...]]:
    """The messages the client sent to PostgreSQL while `command` ran, from libpq's trace of each connection that
    began a transaction (a command's session begins one on its connection, kept or taken from the pool, before its
    first statement): (type, what follows on its first line)."""
    from psycopg import pq

    trace_path, traced = tmp_path / "libpq.trace", []
    with trace_path.open("w") as trace:
        def trace_connection(connection):
            pgconn = connection.connection.dbapi_connection.pgconn
            if pgconn not in traced:
                pgconn.trace(trace.fileno())
                pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
                traced.append(pgconn)

        event.listen(context.engine, "begin", trace_connection)
        try:
            command()
        finally:
            event.remove(context.engine, "begin", trace_connection)
            for pgconn in traced:
                pgconn.untrace()
    return [tuple(line.split("\t")[2:4]) for line in trace_path.read_text().splitlines() if line.startswith("F\t")]


def _actor(context, users, username):
    from bpm.services import identity

    return identity.authenticate(users[username]["Authorization"].split()[-1], context.uow())


def test_a_stale_update_sent_with_the_commit_fails_the_whole_transaction(client, users, context):
    """The database checks the versioned UPDATE (migration 0016): when it matches no row, the statements before it
    in the same round trip are not committed by the COMMIT after it."""
    from bpm.adapters import hot_rows

    deploy(client, users["dora"], EXPENSE)
    instance = start(client, users, "COMMIT-STALE")
    task_id = instance["open_tasks"][0]["id"]
    stale_update = hot_rows._update_sql(ProcessInstance.__table__, ("status",), True)
    with context.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        with pytest.raises(StaleDataError, match="UPDATE of process_instances .* matched 0 rows"):
            hot_rows.send_statements(connection, [
                (RENAME, {"name": "Renamed", "id": task_id}, None),
                (stale_update, {"status": "running", "_key": instance["id"], "version": 1000, "_version": 999},
                 None)], commit=True)
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection.pgconn.transaction_status == pq_status("INERROR")
        connection.rollback()
        connection.execute(text("SELECT 1"))
        hot_rows.send_statements(connection, [
            (RENAME, {"name": "Renamed", "id": task_id}, None),
            (stale_update, {"status": "running", "_key": instance["id"], "version": 2, "_version": 1}, None)],
            commit=True)
        assert dbapi_connection.pgconn.transaction_status == pq_status("IDLE")  # committed in the pipeline
        with pytest.raises(RuntimeError, match="after the transaction was committed"):
            connection.execute(text("SELECT 1"))  # would begin a transaction outside this one
        connection.commit()  # psycopg finds no transaction: sends nothing
    with context.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM tasks WHERE id = :id"), {"id": task_id}).scalar() == "Renamed"
        assert connection.execute(text("SELECT version FROM process_instances WHERE id = :id"),
                                  {"id": instance["id"]}).scalar() == 2


def pq_status(name: str):
    from psycopg import pq

    return getattr(pq.TransactionStatus, name)
