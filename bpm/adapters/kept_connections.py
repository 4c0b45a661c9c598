"""Writing units of work on PostgreSQL keep their SQLAlchemy connection open for the next one.

A command's session used to take a new `Connection` from the engine and close it at the end: SQLAlchemy built the
connection object, checked a driver connection out of the pool, set its mode, fired the pool's events, and at the
end reset the driver connection, returned it and set its mode back. That cost about a tenth of the CPU of a
completion (BENCHMARKS.md, "Engine floor vs server", nineteenth round). Now the connection goes back to a short
stack kept here and the next command takes it as it is; each command is still its own transaction, begun and
committed by its session.

What the pool did for a connection stays true for a kept one:
- one used more than PING_AFTER_IDLE_SECONDS ago is pinged before a command gets it, and a failed ping drops it and
  every other kept connection (a restart killed them all), as the pool replaces its own;
- when the pool is invalidated (a command met a dead connection), the connections kept before that are dropped;
- a connection that is closed, invalidated or still in a transaction is never kept;
- at most `keep` connections wait here; more go back to the pool, so the pool keeps its own for everything else;
- they are closed when the engine is disposed, when this object is dropped, and never used by a forked child.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref

from psycopg import pq
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session

from bpm.adapters.db import PING_AFTER_IDLE_SECONDS


class WritingSessions:
    """The session factory of writing units of work on PostgreSQL: each session is bound to a kept connection of
    `engine` with the given execution options, and `release(session)` gives the connection back once the
    session is closed (bpm.adapters.unit_of_work.UnitOfWork)."""

    def __init__(self, engine: Engine, **execution_options):
        self.engine = engine.execution_options(**execution_options)
        self.connections = KeptConnections(engine, self.engine, keep=max(1, engine.pool.size() // 2))

    def __call__(self) -> Session:
        connection = self.connections.take()
        session = Session(bind=connection, expire_on_commit=False, autoflush=False)
        session.info[_KEPT_CONNECTION] = connection
        return session

    def release(self, session: Session) -> None:
        connection = session.info.pop(_KEPT_CONNECTION, None)
        if connection is not None:
            self.connections.give_back(connection)


_KEPT_CONNECTION = "bpm_kept_connection"


class KeptConnections:
    """Connections of `engine` kept between units of work, the most recently used first. `engine` is the one
    disposed and whose pool is watched; the connections are taken from `connect_from`, the same engine with the
    writing sessions' execution options."""

    def __init__(self, engine: Engine, connect_from: Engine, keep: int):
        self.engine, self.connect_from, self.keep = engine, connect_from, keep
        self._idle: list[tuple[Connection, float, int]] = []  # (connection, released at, generation)
        self._lock = threading.Lock()
        self._generation = 0  # moves on when every kept connection must go (the pool was invalidated)
        self._pid = os.getpid()
        event.listen(engine, "invalidate", self._drop_all_kept)
        event.listen(engine, "engine_disposed", self._close_all)
        weakref.finalize(self, _close_in_process, self._idle, self._pid)

    def take(self) -> Connection:
        """A kept connection that still works, else a new one from the engine."""
        while (kept := self._pop()) is not None:
            connection, released_at, generation = kept
            if generation != self._generation or connection.closed or connection.invalidated:
                _discard(connection)  # kept before a failure: its driver connection may be dead too
                continue
            if time.monotonic() - released_at > PING_AFTER_IDLE_SECONDS and not self._answers(connection):
                continue
            return connection
        return self.connect_from.connect()

    def give_back(self, connection: Connection) -> None:
        """Keep the connection for the next unit of work, or close it (back to the pool) when it cannot be kept."""
        if (os.getpid() != self._pid or connection.closed or connection.invalidated
                or connection.in_transaction() or not _driver_idle(connection)):
            connection.close()  # the pool resets what it gets back
            return
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append((connection, time.monotonic(), self._generation))
                return
        connection.close()

    def waiting(self) -> list[Connection]:
        """The connections kept now, the next one to be taken last."""
        with self._lock:
            return [connection for connection, *_ in self._idle]

    def _pop(self) -> tuple[Connection, float, int] | None:
        if os.getpid() != self._pid:  # a forked child: the parent's connections are not its own to use or close
            with self._lock:
                _LEFT_BY_PARENT.extend(self._idle)
                self._idle[:] = []
                self._pid = os.getpid()
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _answers(self, connection: Connection) -> bool:
        """Ping a connection that sat idle, as the pool pings its own (bpm.adapters.db); one that fails is invalidated,
        and so are the others kept here."""
        try:
            self.engine.dialect.do_ping(connection.connection.dbapi_connection)
        except Exception as error:  # noqa: BLE001 - whatever the driver raises, the connection is not usable
            connection.invalidate(error)  # the pool's "invalidate" event then drops the other kept connections
            connection.close()
            return False
        return True

    def _drop_all_kept(self, *_event) -> None:
        with self._lock:
            self._generation += 1

    def _close_all(self, _engine) -> None:
        """The engine was disposed, its pool already replaced: the kept connections leave the old pool and close."""
        with self._lock:
            kept, self._idle[:] = list(self._idle), []
        for connection, *_ in kept:
            _discard(connection)


_LEFT_BY_PARENT: list = []  # held, never closed: closing would end the parent process's database sessions


def _driver_idle(connection: Connection) -> bool:
    """No transaction open on the driver's connection (one a failed command left would be ended by the pool)."""
    return connection.connection.dbapi_connection.pgconn.transaction_status == pq.TransactionStatus.IDLE


def _discard(connection: Connection) -> None:
    """Close the connection and its driver connection, which does not go back to the pool."""
    with contextlib.suppress(Exception):  # a connection that is already broken: nothing left to do
        if not connection.closed and not connection.invalidated:
            connection.detach()
        connection.close()


def _close_in_process(kept: list[tuple[Connection, float, int]], pid: int) -> None:
    """The kept connections back to the pool, unless this is a forked child (they are its parent's)."""
    if os.getpid() != pid:
        return
    for connection, *_ in kept:
        with contextlib.suppress(Exception):  # a connection that is already broken: nothing left to do
            connection.close()
