"""Writing units of work on PostgreSQL keep their connection for the next one (bpm.adapters.kept_connections): each
is still its own transaction, a connection in use is never shared, and what the pool did for a connection (a ping
after an idle spell, dropping connections after a failure, closing them on dispose) still happens."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import event, exc, func, select, text

from bpm.adapters import kept_connections
from bpm.adapters.orm import Group

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def backend_of(uow) -> int:
    return uow.session.connection().connection.dbapi_connection.info.backend_pid


def groups_named(context, name: str) -> int:
    with context.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Group).where(Group.name == name))


def add_group(uow, name: str) -> None:
    uow.session.add(Group(name=name, display_name=name))


@pytest.fixture
def checkouts(context):
    taken = []
    listener = lambda *_args: taken.append(1)  # noqa: E731
    event.listen(context.engine, "checkout", listener)
    yield taken
    event.remove(context.engine, "checkout", listener)


def kept(context) -> list:
    return context.sessions.connections.waiting()


def kill_backend(context, pid: int) -> None:
    with context.engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()


def test_the_next_unit_of_work_takes_the_kept_connection_and_is_its_own_transaction(context, checkouts):
    with context.uow() as uow:
        first = backend_of(uow)
        add_group(uow, "kept-a")
        uow.commit()
    taken_before = len(checkouts)
    with context.uow() as uow:
        assert backend_of(uow) == first
        add_group(uow, "kept-b")  # left without commit: rolled back
    with context.uow() as uow:
        assert backend_of(uow) == first
    assert len(checkouts) == taken_before, "a kept connection went through the pool"
    assert groups_named(context, "kept-a") == 1 and groups_named(context, "kept-b") == 0


def test_a_unit_of_work_opened_inside_another_gets_a_connection_of_its_own(context):
    with context.uow() as outer:
        add_group(outer, "outer")
        outer.session.flush()  # the outer transaction has begun and written
        with context.uow() as inner:
            assert backend_of(inner) != backend_of(outer)
            add_group(inner, "inner")
            inner.commit()
        assert groups_named(context, "outer") == 0, "the inner commit committed the outer's row"
    assert groups_named(context, "inner") == 1
    assert len(kept(context)) == 2


def test_no_more_connections_are_kept_than_half_the_pool(context):
    keep = context.sessions.connections.keep
    assert keep == context.engine.pool.size() // 2
    units = [context.uow() for _ in range(keep + 2)]
    for uow in units:
        uow.__enter__()
        backend_of(uow)
    for uow in units:
        uow.__exit__(None, None, None)
    assert len(kept(context)) == keep


def test_threads_share_the_kept_connections_one_at_a_time(context):
    backends, errors = [], []

    def work(number: int) -> None:
        try:
            for step in range(20):
                with context.uow() as uow:
                    backends.append(backend_of(uow))
                    add_group(uow, f"thread-{number}-{step}")
                    uow.commit()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Group).where(Group.name.like("thread-%"))) == 80
    assert len(set(backends)) <= 4 + 1  # connections are reused, not one per unit of work


def test_an_idle_kept_connection_is_pinged_and_a_dead_one_replaced_with_every_other(context, monkeypatch):
    with context.uow() as outer, context.uow() as inner:  # two connections kept
        dead = {backend_of(outer), backend_of(inner)}
    assert len(kept(context)) == 2
    for pid in dead:
        kill_backend(context, pid)
    monkeypatch.setattr(kept_connections, "PING_AFTER_IDLE_SECONDS", 0.0)
    with context.uow() as uow:
        assert backend_of(uow) not in dead
        add_group(uow, "after-restart")
        uow.commit()
    assert groups_named(context, "after-restart") == 1
    assert all(backend not in dead for backend in (c.connection.dbapi_connection.info.backend_pid
                                                   for c in kept(context)))


def test_a_kept_connection_used_a_moment_ago_is_not_pinged(context, monkeypatch):
    with context.uow() as uow:
        backend_of(uow)
    pings = []
    monkeypatch.setattr(context.engine.dialect, "do_ping", lambda connection: pings.append(connection) or True)
    with context.uow() as uow:
        backend_of(uow)
    assert pings == []
    monkeypatch.setattr(kept_connections, "PING_AFTER_IDLE_SECONDS", 0.0)
    with context.uow() as uow:
        backend_of(uow)
    assert len(pings) == 1


def test_a_command_that_meets_a_dead_connection_fails_and_the_next_gets_a_new_one(context):
    """Within PING_AFTER_IDLE_SECONDS of their last use the kept connections are not pinged: the first command on
    a dead one fails, as a pooled one would; the failure drops the other kept connections, dead too after a
    restart, so the next command gets a new one."""
    with context.uow() as outer, context.uow() as inner:
        dead = {backend_of(outer), backend_of(inner)}
    for pid in dead:
        kill_backend(context, pid)
    with pytest.raises((exc.DBAPIError, psycopg.OperationalError)), context.uow() as uow:
        add_group(uow, "lost")
        uow.commit()
    with context.uow() as uow:
        assert backend_of(uow) not in dead
        add_group(uow, "next")
        uow.commit()
    assert groups_named(context, "next") == 1 and groups_named(context, "lost") == 0


def test_a_connection_left_in_a_transaction_on_the_driver_is_not_kept(context):
    connections = context.sessions.connections
    connection = connections.take()
    connection.connection.dbapi_connection.execute("BEGIN")  # behind SQLAlchemy's back
    connections.give_back(connection)
    assert connection not in kept(context) and connection.closed
    connection = connections.take()
    connections.give_back(connection)
    assert kept(context) == [connection]


def test_disposing_the_engine_closes_the_kept_connections(context):
    with context.uow() as uow:
        driver = uow.session.connection().connection.dbapi_connection
    assert kept(context)
    context.engine.dispose()
    assert kept(context) == [] and driver.closed
