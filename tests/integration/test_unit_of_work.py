"""How a unit of work ends: a command commits; leaving the block without commit rolls back every write, and a
transaction that only read ends with COMMIT (on PostgreSQL a ROLLBACK makes psycopg drop the connection's
prepared statements, so every read-only request would cost the next commands their prepared plans). On
PostgreSQL a writing unit of work begins its transaction at its first write or locking read."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, update

from bpm.adapters.orm import Group, User


@pytest.fixture
def ends(context):
    """'commit' / 'rollback' for each transaction of the test's engine, in order."""
    seen: list[str] = []

    def committed(_connection):
        seen.append("commit")

    def rolled_back(_connection):
        seen.append("rollback")

    event.listen(context.engine, "commit", committed)
    event.listen(context.engine, "rollback", rolled_back)
    yield seen
    event.remove(context.engine, "commit", committed)
    event.remove(context.engine, "rollback", rolled_back)


def groups_named(context, name: str) -> int:
    with context.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Group).where(Group.name == name))


def test_a_unit_of_work_that_only_read_keeps_the_connections_prepared_statements(context, ends):
    """PostgreSQL: no transaction was begun in the database for the reads, so none is ended there: psycopg sends
    no ROLLBACK and keeps the statements it prepared. SQLite transactions start with BEGIN IMMEDIATE (a write lock,
    counted as a write) and SQLite has no prepared statements to keep: they end with ROLLBACK."""
    with context.uow() as uow:
        for _ in range(6):  # psycopg prepares a statement at its sixth run
            assert uow.session.scalar(select(func.count()).select_from(User)) >= 0
        dbapi_connection = uow.session.connection().connection.dbapi_connection
        prepared = dict(getattr(getattr(dbapi_connection, "_prepared", None), "_names", {}))
    assert ends == ["rollback"]
    if context.engine.dialect.name == "postgresql":
        assert prepared and dict(dbapi_connection._prepared._names) == prepared


def test_a_core_write_left_uncommitted_is_rolled_back(context, users, ends):
    with context.uow() as uow:
        uow.session.execute(update(User).values(email="changed@example.com"))
    assert ends == ["rollback"]
    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)
                                  .where(User.email == "changed@example.com")) == 0


def test_flushed_and_pending_changes_left_uncommitted_are_rolled_back(context, ends):
    with context.uow() as uow:
        uow.session.add(Group(name="flushed-only", display_name=""))
        uow.flush()
    with context.uow() as uow:
        uow.session.add(Group(name="pending-only", display_name=""))
    assert groups_named(context, "flushed-only") == 0
    assert groups_named(context, "pending-only") == 0


def test_an_error_rolls_back_even_a_read(context, ends):
    with pytest.raises(RuntimeError), context.uow() as uow:
        uow.session.scalar(select(func.count()).select_from(User))
        raise RuntimeError("the command failed")
    assert ends == ["rollback"]


def test_a_read_only_unit_of_work_refuses_to_write_and_nothing_is_written(context):
    from bpm.adapters.unit_of_work import ReadOnlyViolation

    with pytest.raises(ReadOnlyViolation, match="INSERT INTO groups"), context.uow(read_only=True) as uow:
        uow.session.add(Group(name="written-by-a-get"))
        uow.session.flush()
    assert groups_named(context, "written-by-a-get") == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_get_requests_read_outside_a_transaction_on_postgresql_and_leave_the_pool_transactional(
        context, client, users):
    """On PostgreSQL a read-only unit of work runs on an autocommit connection (no BEGIN/COMMIT round trips);
    the connection goes back to the pool in transactional mode for the next command."""
    with context.uow(read_only=True) as uow:
        assert uow.session.connection().connection.dbapi_connection.autocommit is True
    with context.engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False
    sent = []
    event.listen(context.engine, "before_cursor_execute", lambda *args: sent.append(args[2].split()[0]))
    assert client.get("/api/v1/tasks", headers=users["alice"]).status_code == 200
    assert sent and set(sent) == {"SELECT"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_read_only_unit_of_work_on_sqlite_does_not_hold_the_write_lock(context):
    """SQLite: a GET reads in a deferred transaction, so a command can commit while the GET is still open."""
    import threading

    committed = threading.Event()

    def write():
        with context.uow() as uow:
            uow.session.add(Group(name="written-while-reading"))
            uow.commit()
        committed.set()

    with context.uow(read_only=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Group)) >= 0
        writer = threading.Thread(target=write)
        writer.start()
        assert committed.wait(5), "the command waited for the read-only unit of work"
    writer.join()
    assert groups_named(context, "written-while-reading") == 1


def test_appended_rows_keep_each_ones_columns_and_get_the_column_defaults(context, users):
    from conftest import START

    from bpm.adapters.orm import HistoryEntry

    table = HistoryEntry.__table__
    with context.uow() as uow:
        uow.append_row(table, {"instance_id": "i-1", "at": START, "event": "note.one", "actor": "ivan"})
        uow.append_row(table, {"instance_id": "i-1", "at": START, "event": "note.two", "actor": "ivan"})
        uow.append_row(table, {"instance_id": "i-1", "at": START, "event": "note.three"})
        uow.append_row(table, {"instance_id": "i-1", "at": START, "event": "note.four", "data": {"n": 4}})
        uow.commit()
    with context.uow() as uow:
        notes = uow.session.execute(select(HistoryEntry.event, HistoryEntry.actor, HistoryEntry.data)
                                    .where(HistoryEntry.instance_id == "i-1").order_by(HistoryEntry.id)).all()
    assert [tuple(note) for note in notes] == [("note.one", "ivan", {}), ("note.two", "ivan", {}),
                                               ("note.three", None, {}), ("note.four", None, {"n": 4})]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_writing_unit_of_work_begins_its_transaction_at_its_first_write_or_locking_read(context):
    """PostgreSQL: reads before the first write run outside a transaction; the first write (or a SELECT that
    locks rows) begins it, and everything from there is one transaction: a failure rolls back every write."""
    from psycopg.pq import TransactionStatus

    def status(uow):
        return uow.session.connection().connection.dbapi_connection.pgconn.transaction_status

    with context.uow() as uow:
        uow.session.scalar(select(func.count()).select_from(User))
        assert status(uow) == TransactionStatus.IDLE  # nothing begun for a read
        uow.session.scalars(select(Group).with_for_update()).all()
        assert status(uow) == TransactionStatus.INTRANS  # the locks last until the end of the transaction
    with pytest.raises(RuntimeError), context.uow() as uow:
        uow.session.add(Group(name="first-of-two"))
        uow.session.flush()
        assert status(uow) == TransactionStatus.INTRANS
        uow.session.add(Group(name="second-of-two"))
        uow.session.flush()
        raise RuntimeError("the command failed after its writes")
    assert groups_named(context, "first-of-two") == 0 and groups_named(context, "second-of-two") == 0
    with context.uow() as uow:
        uow.session.add(Group(name="committed-alone"))
        uow.commit()
    assert groups_named(context, "committed-alone") == 1


def test_row_in_session_finds_added_pending_held_and_stored_rows_and_forgets_removed_ones(context, users):
    uow = context.uow()
    with uow:
        added, plain = Group(name="added-group", id=10_001), Group(name="plain-group")
        uow.add(added)  # pending: found by its key
        uow.session.add(plain)
        uow.session.flush()  # plain gets its key from the database, and is held from then on
        pending = Group(name="pending-group", id=99_999)
        uow.session.add(pending)  # not through add(): found among the session's new rows
        stored_id = uow.session.scalar(select(Group.id).where(Group.name == "team-leads"))
        assert uow.row_in_session(Group, 10_001, load=False) is added
        assert uow.row_in_session(Group, plain.id, load=False) is plain
        assert uow.row_in_session(Group, 99_999, load=False) is pending
        assert uow.row_in_session(Group, stored_id, load=False) is None  # not in this session, not loaded
        assert uow.row_in_session(Group, stored_id).name == "team-leads"
        uow.session.expunge(added)
        assert uow.row_in_session(Group, 10_001, load=False) is None
    with uow:  # a new unit of work starts with no added rows of the last one
        assert uow._added == {}


def _name_read():
    from sqlalchemy import bindparam

    return select(User.username).where(User.username == bindparam("name"))


@pytest.fixture
def checkouts(context):
    """Connections taken so far from the engine's pool and from the pool of the read-only sessions' own reads."""
    from bpm.adapters.db import POOLED_READS

    pooled = context.read_sessions.kw["info"][POOLED_READS]
    taken = {"engine": 0, "pooled reads": 0}

    def counter(name):
        def count(*_args):
            taken[name] += 1
        return count

    listeners = [(context.engine, counter("engine")), (pooled, counter("pooled reads"))]
    for engine, listener in listeners:
        event.listen(engine, "checkout", listener)
    yield taken, pooled
    for engine, listener in listeners:
        event.remove(engine, "checkout", listener)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_read_only_units_page_read_takes_a_pooled_connection_of_its_own_in_autocommit(context, users, checkouts):
    """The inbox's page and counts (bpm.adapters.loaded_rows) are read on a connection of a pool whose
    connections stay in autocommit, given back at once; the session itself never begins."""
    from bpm.adapters import loaded_rows

    taken, pooled = checkouts
    with context.uow(read_only=True) as uow:
        rows = loaded_rows.all_rows(uow.session, _name_read(), {"name": "alice"})
        first = loaded_rows.first_row(uow.session, _name_read(), {"name": "bob"})
        assert not uow.session.in_transaction()
        assert pooled.pool.checkedout() == 0
    assert [tuple(row) for row in rows] == [("alice",)] and tuple(first) == ("bob",)
    assert taken == {"engine": 0, "pooled reads": 2}
    fairy = pooled.raw_connection()
    try:
        assert fairy.driver_connection.autocommit is True
        assert fairy.driver_connection.info.transaction_status.name == "IDLE"
    finally:
        fairy.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_once_the_session_has_begun_its_reads_stay_on_its_connection(context, users, checkouts):
    from bpm.adapters import loaded_rows

    taken, _pooled = checkouts
    with context.uow(read_only=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) >= 1
        row = loaded_rows.first_row(uow.session, _name_read(), {"name": "alice"})
    assert tuple(row) == ("alice",)
    assert taken == {"engine": 1, "pooled reads": 0}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_read_on_a_dropped_pooled_connection_fails_as_sqlalchemy_fails_and_the_pool_replaces_it(
        context, users, checkouts, monkeypatch):
    from sqlalchemy import exc, text

    from bpm.adapters import db, loaded_rows

    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600)  # no ping at checkout finds the dropped connection first
    _taken, pooled = checkouts
    with context.uow(read_only=True) as uow:
        loaded_rows.first_row(uow.session, _name_read(), {"name": "alice"})
    fairy = pooled.raw_connection()
    backend = fairy.driver_connection.info.backend_pid
    fairy.close()
    with context.engine.begin() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": backend}).scalar() is True
    with pytest.raises(exc.OperationalError) as raised, context.uow(read_only=True) as uow:
        loaded_rows.first_row(uow.session, _name_read(), {"name": "alice"})
    assert raised.value.connection_invalidated
    assert pooled.pool.checkedout() == 0
    with context.uow(read_only=True) as uow:
        assert tuple(loaded_rows.first_row(uow.session, _name_read(), {"name": "alice"})) == ("alice",)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_disposing_the_engine_disposes_the_pool_of_the_pooled_reads(context, users, checkouts):
    from bpm.adapters import loaded_rows

    _taken, pooled = checkouts
    with context.uow(read_only=True) as uow:
        loaded_rows.first_row(uow.session, _name_read(), {"name": "alice"})
    assert pooled.pool.checkedin() == 1
    context.engine.dispose()
    assert pooled.pool.checkedin() == 0
