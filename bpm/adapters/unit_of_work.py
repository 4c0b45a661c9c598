"""The unit of work owns the transaction: a service opens it, changes things, and commits once.

Leaving the block without commit() rolls everything back, so a failing command leaves no half-written state.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable
from typing import Any

from psycopg import pq
from sqlalchemy import Engine, Table, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from bpm.adapters.db import BEGIN_PENDING, COMMITTED, LAZY_BEGIN, POOLED_READS, READ_ONLY, WROTE, begin_if_pending
from bpm.adapters.hot_rows import QUEUED, Writes, insert_rows, queue_appended, queue_hot_rows, take_queued
from bpm.adapters.kept_connections import WritingSessions
from bpm.clock import Clock, SystemClock
from bpm.domain.errors import ConcurrencyConflict


class UnitOfWork:
    def __init__(self, session_factory: Callable[[], Session], clock: Clock | None = None, settings=None):
        self.session_factory = session_factory
        self.clock = clock or SystemClock()
        self.settings = settings
        self.session: Session | None = None
        self.events: list[Any] = []
        self._added: dict[tuple[type, Any], Any] = {}  # rows given to add(), by (model, primary key)
        self._depth = 0

    def __enter__(self) -> UnitOfWork:
        # Re-entrant: a service called from another service joins the outer transaction.
        if self._depth == 0:
            self.session = self.session_factory()
            self.events = []
            self._added = {}
            self._token = _current.set(self)
        self._depth += 1
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            if exc_type is None and _read_only(self.session):
                _end_read_only(self.session)
            # close() rolls back whatever was not committed and detaches objects without expiring them,
            # so callers can still read what a service returned.
            try:
                self.session.close()
            finally:
                release = getattr(self.session_factory, "release", None)
                if release is not None:
                    release(self.session)  # its connection, kept for the next unit of work (kept_connections)
            self.session = None
            self._added = {}
            _current.reset(self._token)

    def commit(self) -> None:
        if self._depth > 1:
            return
        from bpm.services import handlers  # late: handlers import the services

        handlers.dispatch(self)
        try:
            self.session.commit()  # the before_commit hook writes the appended rows first
        except StaleDataError as error:
            self.session.rollback()
            raise ConcurrencyConflict("the instance was changed by another request; reload and retry") from error

    def flush(self) -> None:
        """Write pending ORM changes and appended rows now (a query in this transaction will see them)."""
        try:
            self.session.flush()
            write_appended(self.session)
        except StaleDataError as error:
            self.session.rollback()
            raise ConcurrencyConflict("the instance was changed by another request; reload and retry") from error

    def append_row(self, table: Table, values: dict[str, Any]) -> None:
        """Queue an insert-only row (history): written after the ORM's own changes, in the order appended, with
        one executemany per table, when the transaction flushes through `flush()` or commits."""
        self.session.info.setdefault(APPENDED, []).append((table, values))

    def rollback(self) -> None:
        if self.session is not None:
            self.session.rollback()
            self._added = {}

    def add(self, row: Any) -> None:
        """Add a new row to the transaction, as `session.add`; `row_in_session` then finds it by its key at once
        (a new task is looked up by each handler of its TaskCreated event)."""
        self.session.add(row)
        if row.id is not None:  # a key the database gives is found among the held rows once flushed
            self._added[(type(row), row.id)] = row

    def row_in_session(self, model: type, key: Any, load: bool = True) -> Any:
        """A row this transaction added (pending, not flushed) or already holds; otherwise loaded by primary key
        when `load` is true, else None. Commit-time handlers use it to see each other's rows without a flush. Rows
        given to `add` are found by key; other pending rows by a scan of the session's new rows, which builds a
        set of all of them at each call."""
        added = self._added.get((model, key))
        if added is not None and added in self.session:
            return added
        held = self.session.identity_map.get(identity_key(model, key))
        if held is not None:
            return held
        pending = next((row for row in self.session.new if isinstance(row, model) and row.id == key), None)
        if pending is not None or not load:
            return pending
        return self.session.get(model, key)

    def publish(self, event: Any) -> None:
        """Record a domain event; handlers turn events into rows of this same transaction at commit."""
        self.events.append(event)


APPENDED = "appended_rows"


def _read_only(session: Session) -> bool:
    """Whether the session's open transaction only read: no ORM change pending, no row queued, and every
    statement it sent was a SELECT. Such a transaction is ended with COMMIT instead of ROLLBACK: the same for
    the data, but psycopg drops every prepared statement of the connection on ROLLBACK, so a read-only request
    (an inbox page) would otherwise make the next commands on that connection parse and plan each statement
    again. Anything else (a write, an unflushed change, an error) is still rolled back. (On PostgreSQL a writing
    unit of work that only read has begun no transaction in the database, see `session_factory`: neither is
    sent.)"""
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return False
    if session.info.get(APPENDED):
        return False
    connection = session.connection()
    return not connection.info.get(WROTE, True) and _begun_in_database(connection)


def _begun_in_database(connection) -> bool:
    """False where the driver runs in autocommit and no BEGIN was sent (PostgreSQL: a read-only unit of work, or a
    writing one that only read): there is no transaction in the database to end, and close() ends the session's
    without a statement (psycopg sends no ROLLBACK then, and keeps the prepared statements)."""
    dbapi_connection = connection.connection.dbapi_connection
    return not (getattr(dbapi_connection, "autocommit", False) is True
                and dbapi_connection.pgconn.transaction_status == pq.TransactionStatus.IDLE)


def _end_read_only(session: Session) -> None:
    try:
        session.commit()  # nothing was written: COMMIT ends it like ROLLBACK would, see _read_only
    except Exception:  # noqa: BLE001 - a transaction that cannot commit is rolled back by close(), as before
        session.rollback()


@event.listens_for(Engine, "begin")
def _transaction_begins(connection) -> None:
    info = connection.info
    info[WROTE] = False
    info[COMMITTED] = False
    info[BEGIN_PENDING] = bool(connection.get_execution_options().get(LAZY_BEGIN))


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(connection, _cursor, statement: str, *_rest) -> None:
    info = connection.info
    if info.get(COMMITTED):
        # psycopg would begin a transaction of its own for it, outside the unit of work's: a bug to fix
        raise RuntimeError(f"a statement after the transaction was committed with its writes: {statement[:120]}")
    reads = statement.lstrip()[:6].upper() == "SELECT"
    if info.get(BEGIN_PENDING) and (not reads or _takes_locks(statement)):
        begin_if_pending(connection)  # the first write or locking read of a lazily begun transaction
    if reads:
        return
    if connection.get_execution_options().get(READ_ONLY) and _writes(statement):
        raise ReadOnlyViolation(f"a read-only unit of work tried to write: {statement.split(chr(10))[0][:120]}")
    connection.info[WROTE] = True


def _takes_locks(select_statement: str) -> bool:
    """Whether a SELECT takes row locks (FOR UPDATE ... SKIP LOCKED claims) or a transaction-scoped advisory lock:
    it needs the transaction begun, or its locks would end with the statement. The substring tests come first: the
    expression alone costs about 100 us on a 2 KB statement (the completion's load), the tests about 4 us."""
    lowered = select_statement.lower()
    return ("for " in lowered and _LOCKING.search(lowered) is not None) or "pg_advisory_xact" in lowered


_LOCKING = re.compile(r"\bfor (?:no key )?(?:update|key share|share)\b")

WRITING_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "ALTER", "DROP", "TRUNCATE"})


def _writes(statement: str) -> bool:
    return statement.lstrip()[:8].split(maxsplit=1)[0].upper() in WRITING_VERBS


class ReadOnlyViolation(RuntimeError):
    """A statement that writes, in a unit of work opened for reading (a GET request): a bug to fix."""


def write_appended(session: Session, writes: Writes | None = None) -> None:
    """Insert the rows queued with `UnitOfWork.append_row`: one statement per run of rows of the same table and
    columns (an executemany takes its columns from the first row); on PostgreSQL sent on the driver, queued on
    `writes` when given (bpm.adapters.hot_rows). Then the statements queued with `hot_rows.queue_statement`."""
    queued = session.info.pop(APPENDED, None)
    while queued:
        table, columns = queued[0][0], queued[0][1].keys()
        run = []
        while queued and queued[0][0] is table and queued[0][1].keys() == columns:
            run.append(queued.pop(0)[1])
        if writes is not None:
            queue_appended(writes, table, run)
        elif not insert_rows(session, table, run):
            session.execute(table.insert(), run)
    take_queued(session, writes)


@event.listens_for(Session, "before_commit")
def _write_appended_before_commit(session: Session) -> None:
    """Instances and tasks first (other rows refer to them), then the ORM's own rows, then the appended rows (they
    may refer to any). On PostgreSQL the first and the last go in one round trip, with the COMMIT, when the ORM
    has nothing of its own to write, which is the common command."""
    writes = queue_hot_rows(session)
    if writes is None:
        session.flush()
        write_appended(session)
        return
    if writes.leave_work_to_flush():
        writes.send()
        session.flush()
    write_appended(session, writes)
    # The flush above left nothing (or there was nothing for it) and the appended rows are queued on `writes`: these
    # are the transaction's last statements, so their round trip carries the COMMIT, unless a savepoint is still to
    # be released. A statement after it would raise (_note_writes).
    writes.send(commit=not session.in_nested_transaction())


@event.listens_for(Session, "after_rollback")
def _forget_appended(session: Session) -> None:
    session.info.pop(APPENDED, None)
    session.info.pop(QUEUED, None)


# The unit of work of the command running in this context: lets engine callbacks (rule tasks) read
# configuration rows in the command's own transaction without threading it through SpiffWorkflow.
_current: contextvars.ContextVar[UnitOfWork | None] = contextvars.ContextVar("current_uow", default=None)


def current() -> UnitOfWork | None:
    return _current.get()


# The execution options of writing sessions on PostgreSQL: the driver in autocommit, BEGIN sent lazily.
WRITING_OPTIONS = {"isolation_level": "AUTOCOMMIT", LAZY_BEGIN: True}


def session_factory(engine: Engine) -> sessionmaker | WritingSessions:
    """Sessions for units of work that write. On PostgreSQL their transaction is begun lazily: the driver runs in
    autocommit until the first statement that writes or takes a lock, and BEGIN is sent just before it
    (`_note_writes`), or in the same round trip as the command's writes when those are the first
    (bpm.adapters.hot_rows): a command whose writes all go there sends BEGIN, its writes and COMMIT together. The
    reads before the first write see what every statement sees under READ COMMITTED, the latest committed data
    when it starts, in a transaction or not; a SELECT that locks rows begins the transaction first. There, too,
    a session's connection is kept for the next unit of work (bpm.adapters.kept_connections)."""
    if engine.dialect.name == "postgresql":
        return WritingSessions(engine, **WRITING_OPTIONS)
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def read_only_session_factory(engine: Engine, pooled_reads: Engine | None = None) -> sessionmaker:
    """Sessions for units of work that only read (the API's GET requests): a statement that writes (INSERT,
    UPDATE, DELETE, DDL) raises ReadOnlyViolation. On PostgreSQL they also run without a transaction (driver
    autocommit): a request that sends one SELECT then costs one round trip instead of three (BEGIN, SELECT,
    COMMIT), and no ROLLBACK drops the connection's prepared statements. On SQLite they keep a transaction, begun
    deferred instead of IMMEDIATE (bpm.adapters.db), so a reader does not take the write lock; the driver's
    isolation level stays as the engine set it.

    `pooled_reads` (bpm.adapters.db.pooled_reads_engine): the reads of bpm.adapters.loaded_rows (the inbox's page
    and counts) take a connection of that engine's pool for themselves while the session has not begun, instead of
    the session's connection."""
    options = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    info = {POOLED_READS: pooled_reads} if pooled_reads is not None else {}
    return sessionmaker(bind=engine.execution_options(**options), expire_on_commit=False, autoflush=False, info=info)
