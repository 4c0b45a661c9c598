"""PostgreSQL: a command's own rows written by statements compiled once, on the transaction's psycopg connection.

Every command writes the same few rows: its instance (state, version, status), the tasks it completes and
creates, an approver's decision record, its history rows, and a new task's in-app rows and outbox messages.
Through the ORM's flush and SQLAlchemy's execution layer each of them costs the unit of work's bookkeeping and
an execution context around the driver call, about as much CPU again as psycopg and PostgreSQL take for the
statement. Here they are sent on the driver directly, as the SQL text SQLAlchemy itself compiles for them (so
PostgreSQL sees the same prepared statements):
- `queue_hot_rows`, at commit: one INSERT per new row and one UPDATE of the changed columns per changed row of
  the HOT_MODELS, queued on a `Writes`; `queue_appended` adds the appended rows (history, archive chunks:
  bpm.adapters.unit_of_work.write_appended) as multi-row INSERTs of at most 100 rows. The unit of work sends them all in
  one round trip (libpq's pipeline mode, prepared statements) and the objects are then marked as written. When
  the command also has rows of its own for the ORM (signers, timers, ...), the instance and task rows are sent
  first and the flush writes those after them, so rows that refer to a task or an instance find it;
- `queue_statement`: a statement compiled once per shape with `compiled` whose result nobody reads (a new
  task's fan-out of in-app rows and outbox messages), sent after the rows above in the same round trip;
- `insert_rows`: appended rows written at once (an explicit `UnitOfWork.flush`).

Semantics kept from the flush:
- the instance's version check (`version_id_col`): the UPDATE names the version read, sets the next one, and a row
  count other than one raises StaleDataError, which the unit of work turns into ConcurrencyConflict. The
  database checks the count (`_update_sql`), so the writes' round trip may carry the COMMIT as well: a
  command's writes and its commit cost one round trip;
- column defaults of the model (`default=`) are applied to new rows and set on the objects;
- JSON columns are sent as JSONB, the way the ORM's type sends them (None set on an attribute is JSON null);
- a driver error is raised as SQLAlchemy's exception for it (IntegrityError ...), and a dropped connection is
  invalidated;
- the written objects end as the flush leaves them (`Session._register_persistent`, the step the flush ends with;
  SQLAlchemy is pinned below 2.2 and tests/integration/test_hot_rows.py checks the outcome).
Anything else (a deleted task or instance, a row read in part, another database, a read-only unit of work) is
left to the flush.
"""

from __future__ import annotations

import functools
import itertools
import re
import select
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Table, Text, bindparam, cast, exc, func, literal_column
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.exc import StaleDataError

from bpm.adapters.db import BEGIN_PENDING, COMMITTED, READ_ONLY, WROTE, begin_if_pending
from bpm.adapters.orm import ProcessInstance, Task
from bpm.adapters.orm_approvals import ApprovalRecord

# In the order they are written: a task refers to its instance, an approver's decision to its task.
HOT_MODELS = (ProcessInstance, Task, ApprovalRecord)


def queue_hot_rows(session: Session) -> Writes | None:
    """The statements writing the session's new and changed rows of the HOT_MODELS (PostgreSQL), queued on a
    `Writes` of the transaction's connection, the rows marked written. None where the session is not a writing
    one on PostgreSQL: the flush writes them."""
    connection = _writable_connection(session)
    if connection is None:
        return None
    writes = Writes(connection, session)
    new = [state_of(row) for row in session.new if type(row) in HOT_MODELS]
    changed = [state for state in map(state_of, session.dirty) if state.class_ in HOT_MODELS and _read_whole(state)]
    if not (new or changed) or any(type(row) in HOT_MODELS for row in session.deleted):
        return writes
    for model in HOT_MODELS:
        for state in new:
            if state.class_ is model:
                _insert(writes, state)
        for state in changed:
            if state.class_ is model:
                _update(writes, state)
    writes.written = {*new, *changed}
    return writes


def queue_appended(writes: Writes, table: Table, rows: list[dict[str, Any]]) -> None:
    """Queue append-only rows of one table and the same columns (history, archive chunks) as multi-row INSERTs of
    at most ROWS_PER_INSERT rows, with the table's column defaults for the columns they leave out."""
    names = tuple(rows[0])
    defaults = [column for column in _columns_with_defaults(table) if column.key not in rows[0]]
    json = _json_columns(table)
    columns = names + tuple(column.key for column in defaults)
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk, values = rows[start:start + ROWS_PER_INSERT], {}
        for number, row in enumerate(chunk):
            values.update({f"{name}_{number}": Jsonb(row[name]) if name in json else row[name] for name in names})
            values.update({f"{column.key}_{number}": _bound_default(column, json) for column in defaults})
        writes.add(_insert_rows_sql(table, columns, len(chunk)), values)


# Bounds the statement texts (one per row count, each prepared) and the parameters of one statement (PostgreSQL
# takes at most 65,535).
ROWS_PER_INSERT = 100


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> bool:
    """Insert append-only rows now (`queue_appended`, sent at once). False (nothing done) where the session is
    not a writing one on PostgreSQL: the caller inserts them itself."""
    connection = _writable_connection(session)
    if connection is None:
        return False
    writes = Writes(connection, session)
    queue_appended(writes, table, rows)
    writes.send()
    return True


def queue_statement(session: Session, statement: DriverStatement, values: dict[str, Any],
                    json_values: tuple[str, ...] = ()) -> bool:
    """Queue a statement whose result nobody reads (a new task's fan-out of in-app rows and outbox messages): it is
    sent with the command's other writes, after them, in their round trip at commit (or at an explicit
    `UnitOfWork.flush`, see `take_queued`). `json_values` name the values sent as JSONB. False (nothing queued)
    where the session is not a writing one on PostgreSQL: the caller runs it itself."""
    if _writable_connection(session) is None:
        return False
    parameters = statement.parameters(values)
    for name in json_values:
        parameters[name] = Jsonb(parameters[name])
    session.info.setdefault(QUEUED, []).append((statement.text, parameters, None))
    return True


def take_queued(session: Session, writes: Writes | None = None) -> None:
    """Add the statements queued on the session with `queue_statement` to `writes`, or send them now."""
    queued = session.info.pop(QUEUED, None)
    if not queued:
        return
    if writes is None:
        send_statements(_writable_connection(session), queued)
        return
    writes.statements.extend(queued)


QUEUED = "bpm_queued_statements"  # on a session's info, until its transaction writes or rolls back


class Writes:
    """Statements for the transaction's psycopg connection, sent together: in one round trip through libpq's
    pipeline mode, each with its parameters adapted by psycopg (the same types and formats as a cursor's) and run
    as a prepared statement. Through a cursor instead, each statement costs psycopg's Python layers about 50 us
    of CPU more and a round trip of its own (BENCHMARKS.md, "Engine floor vs server", twelfth round). The
    database checks the UPDATEs' row counts itself (`_update_sql`); a statement's `check` reads its result (a
    key the database gave a new row)."""

    def __init__(self, connection, session: Session):
        self.connection, self.session = connection, session
        self.statements: list[tuple[str, dict[str, Any], Check | None]] = []
        self.written: set = set()  # states of the rows the statements write, marked written once sent

    def leave_work_to_flush(self) -> bool:
        """Whether the session holds changes besides the rows queued here (the flush must write them, after
        these)."""
        session = self.session
        return bool(session.deleted) or any(state_of(row) not in self.written for row in session.new) or any(
            state_of(row) not in self.written for row in session.dirty)

    def add(self, sql: str, parameters: dict[str, Any], check: Check | None = None) -> None:
        self.statements.append((sql, parameters, check))

    def send(self, commit: bool = False) -> None:
        """Send the queued statements; with `commit`, the transaction's COMMIT goes with them when they go in a
        pipeline (the caller has nothing left to write: see `send_statements`)."""
        statements, self.statements = self.statements, []
        if statements:
            send_statements(self.connection, statements, commit=commit)
        # As the flush ends: new rows become persistent, and every written row's values become its committed state
        # (also noted on the transaction, so a rollback expires them). A flush after this leaves them alone.
        written, self.written = self.written, set()
        if written:
            self.session._register_persistent(written)


@dataclass(frozen=True)
class Result:
    """What a check needs of a statement's result: the rows it matched, and its first value (RETURNING)."""

    rowcount: int
    value: Any


Check = Callable[[Result], None]


def send_statements(connection, statements: list[tuple[str, dict[str, Any], Check | None]],
                    commit: bool = False) -> None:
    """Send the statements in one pipeline when the connection is in a transaction (or its BEGIN is still to be sent:
    it goes first in the pipeline, see unit_of_work.session_factory), not in a pipeline already, and prepares
    statements (else one by one on a cursor, after the BEGIN if pending). Then, statement by statement in order,
    a driver error is raised as SQLAlchemy raises it (an UPDATE that matched no row as StaleDataError), or the
    statement's check runs.

    With `commit`, a pipeline ends with the transaction's COMMIT: the round trip of the writes is the commit's.
    The database itself checks each UPDATE's row count (`_update_sql`), so a failed write aborts the transaction
    and the COMMIT after it is skipped; nothing is committed that a check here would have refused. psycopg's own
    commit then finds no transaction and sends nothing. Without a pipeline the caller's COMMIT follows as
    before."""
    dbapi_connection = connection.connection.dbapi_connection
    pgconn, prepared = dbapi_connection.pgconn, _prepared_statements(dbapi_connection)
    begin = bool(connection.info.get(BEGIN_PENDING))
    in_transaction = pq.TransactionStatus.IDLE if begin else pq.TransactionStatus.INTRANS
    if (prepared is None or pgconn.transaction_status != in_transaction
            or pgconn.pipeline_status != pq.PipelineStatus.OFF):
        begin_if_pending(connection)
        _on_cursor(connection, statements)
        return
    connection.info[BEGIN_PENDING] = False
    try:
        queries = [_adapted(Transformer(dbapi_connection), sql, parameters) for sql, parameters, _ in statements]
        results = _in_pipeline(pgconn, queries, prepared, begin, commit)
    except psycopg.Error as error:
        _raise_as_sqlalchemy_does(connection, None, *statements[0][:2], error)
    statements = [*([("BEGIN", {}, None)] if begin else []), *statements, *([("COMMIT", {}, None)] if commit else [])]
    for (sql, parameters, check), result in zip(statements, results, strict=True):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error = psycopg.errors.error_from_result(result, encoding=dbapi_connection.info.encoding)
            _raise_as_sqlalchemy_does(connection, None, sql, parameters, error)
        if check is not None:
            check(Result(result.command_tuples or 0,
                         int(result.get_value(0, 0)) if result.ntuples else None))  # RETURNING an integer key
    if commit:
        connection.info[COMMITTED] = True  # until the next transaction begins: see unit_of_work._note_writes


def _on_cursor(connection, statements) -> None:
    with driver(connection) as execute:
        for sql, parameters, check in statements:
            cursor = execute(sql, parameters)
            if check is not None:
                check(Result(cursor.rowcount, cursor.fetchone()[0] if cursor.description else None))


def _prepared_statements(dbapi_connection):
    """psycopg's map of the statements prepared on this connection, (numbered SQL, parameter types) -> name, or
    None when the connection does not prepare statements (or libpq has no pipeline mode). The statements sent
    here are prepared under names of their own and entered in that map: psycopg then deallocates them with its
    own (on a rollback, after DDL, when the map is full), and a statement whose name left the map is prepared
    again. psycopg is pinned below 4 and tests/integration/test_hot_rows.py checks each of those cases."""
    if not _PIPELINE_SUPPORTED:
        return None
    manager = getattr(dbapi_connection, "_prepared", None)
    names = getattr(manager, "_names", None)
    if names is None or getattr(manager, "prepare_threshold", None) is None or getattr(manager, "_to_flush", True):
        return None  # not a psycopg 3 we know, prepares nothing, or a deallocation of its own is still to be sent
    return names


def _adapted(transformer: Transformer, sql: str, parameters: dict[str, Any]) -> tuple:
    """(numbered SQL, values, types, formats) of one statement, adapted by psycopg as a cursor would."""
    text, names = _numbered(sql)
    values = transformer.dump_sequence([parameters[name] for name in names], [PyFormat.AUTO] * len(names))
    return text, values, transformer.types or (), transformer.formats


def _in_pipeline(pgconn, queries: list[tuple], prepared, begin: bool = False, commit: bool = False) -> list:
    """Each query's result, after one round trip: a query not prepared on the connection yet is prepared first, in
    the same pipeline (a failed prepare stands as its query's result). The transaction is left aborted if one
    failed; a statement prepared before that stays prepared (PREPARE is not undone by a rollback). With `commit`,
    COMMIT follows the queries, and its result theirs (skipped after a failure: the transaction stays open and
    aborted, for the caller's rollback). With `begin`, BEGIN precedes them, and its result theirs."""
    sent = []  # per command in the pipeline: the key and name it prepares, or None for a query
    pgconn.enter_pipeline_mode()
    try:
        if begin:
            pgconn.send_query_params(b"BEGIN", None)
            sent.append(None)
        for text, values, types, formats in queries:
            key = (text, types)
            name = prepared.get(key)
            if name is not None:
                prepared.move_to_end(key)  # recently used, as psycopg marks its own (the map evicts the oldest)
            else:
                name = f"_bpm_{next(_statement_numbers)}".encode()
                pgconn.send_prepare(name, text, param_types=types)
                sent.append((key, name))
            pgconn.send_query_prepared(name, values, param_formats=formats)
            sent.append(None)
        if commit:
            pgconn.send_query_params(b"COMMIT", None)
            sent.append(None)
        pgconn.pipeline_sync()
        results = _pipeline_results(pgconn)
    finally:
        if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status != pq.PipelineStatus.OFF:
            pgconn.exit_pipeline_mode()
    return _query_results(sent, results, prepared)


def _query_results(sent: list, results: list, prepared) -> list:
    """The results of the queries, with the statements that were prepared entered in psycopg's map."""
    queries, failed_prepare = [], None
    for preparation, result in zip(sent, results, strict=True):
        if preparation is None:
            queries.append(failed_prepare or result)
            failed_prepare = None
        elif result.status == pq.ExecStatus.COMMAND_OK:
            prepared[preparation[0]] = preparation[1]
        else:
            failed_prepare = result
    return queries


_statement_numbers = itertools.count()
_PIPELINE_SUPPORTED = psycopg.Pipeline.is_supported()  # libpq 14 or later


def _pipeline_results(pgconn) -> list:
    """Flush what was queued, then one result per statement up to the pipeline's sync."""
    while pgconn.flush():
        _wait(pgconn.socket, select.POLLIN | select.POLLOUT)
        pgconn.consume_input()
    results = []
    while True:
        if pgconn.is_busy():
            _wait(pgconn.socket, select.POLLIN)
            pgconn.consume_input()
            continue
        result = pgconn.get_result()
        if result is None:  # the end of one statement's results
            continue
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            return results
        results.append(result)


def _wait(socket: int, events: int) -> None:
    poll = select.poll()
    poll.register(socket, events)
    poll.poll()


@functools.cache
def _numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """psycopg's named placeholders as libpq's numbered ones, and the name each number stands for."""
    names: list[str] = []

    def number(match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(names)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _writable_connection(session: Session):
    """The transaction's connection when it is PostgreSQL's and may write (else None: left to SQLAlchemy)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql" or connection.get_execution_options().get(READ_ONLY):
        return None
    connection.info[WROTE] = True  # no SQLAlchemy event sees the statements sent here
    return connection


@contextmanager
def driver(connection):
    """`execute(statement, parameters, many=False)` on a psycopg cursor of the connection; returns the cursor."""
    with connection.connection.dbapi_connection.cursor() as cursor:
        def execute(statement: str, parameters, many: bool = False):
            try:
                if many:
                    cursor.executemany(statement, parameters)
                else:
                    cursor.execute(statement, parameters)
            except psycopg.Error as error:
                _raise_as_sqlalchemy_does(connection, cursor, statement, parameters, error)
            return cursor

        yield execute


# A read that runs again and again (a completion's load, the inbox's page) runs on a cursor kept on the connection
# for its statement. psycopg keeps a cursor's adaptation of values (the dumper of each parameter's type, the loader
# of each result column) while the same query object runs on it again, and builds them anew for any other: on a
# fresh cursor a 27-column read cost 89 us of CPU, on its kept cursor 66 us (BENCHMARKS.md, "Engine floor vs
# server", sixteenth round). The cursors are per connection, which one thread uses at a time; the least recently
# used beyond KEPT_CURSORS are closed.
KEPT_CURSORS = 32
_KEPT = "_bpm_kept_cursors"


@contextmanager
def reading(connection, statement: str, parameters):
    """The psycopg cursor of the connection that ran `statement` (a str the caller passes as the same object each
    time) with `parameters`, its rows still to be fetched; a driver error is raised as in `driver`."""
    dbapi_connection = connection.connection.dbapi_connection
    kept = getattr(dbapi_connection, _KEPT, None)
    if kept is None:
        kept = {}
        setattr(dbapi_connection, _KEPT, kept)
    cursor = kept.pop(statement, None)  # out of `kept` while in use: a nested read of the statement gets another
    if cursor is None:
        cursor = dbapi_connection.cursor()
    try:
        try:
            cursor.execute(statement, parameters)
        except psycopg.Error as error:
            _raise_as_sqlalchemy_does(connection, cursor, statement, parameters, error)
        yield cursor
    except BaseException:
        cursor.close()  # a cursor whose read failed is not kept
        raise
    _keep(kept, statement, cursor)


class PooledConnection:
    """A connection taken from an engine's pool without SQLAlchemy's Connection around it, with what `reading`
    and the driver errors use of one: the dialect, the pooled connection, invalidation. `close()` gives it back."""

    __slots__ = ("connection", "dialect")

    def __init__(self, engine):
        self.dialect = engine.dialect
        self.connection = engine.raw_connection()  # the pool's checkout events run, the idle ping among them

    def invalidate(self, error: BaseException) -> None:
        self.connection.invalidate(error)

    def close(self) -> None:
        self.connection.close()


def _keep(kept: dict, statement: str, cursor) -> None:
    replaced = kept.pop(statement, None)  # a nested read's cursor, put back first
    if replaced is not None:
        replaced.close()
    kept[statement] = cursor  # the most recently used last
    if len(kept) > KEPT_CURSORS:
        kept.pop(next(iter(kept))).close()


state_of = attributes.instance_state


def _raise_as_sqlalchemy_does(connection, cursor, statement: str, parameters, error: psycopg.Error):
    """What SQLAlchemy's own execution raises for a driver error: its exception class for it (IntegrityError for
    a unique violation, which callers catch), and a connection the database dropped is invalidated, so the pool
    replaces it."""
    if error.sqlstate == STALE_ROW:
        raise StaleDataError(error.diag.message_primary) from error  # the unit of work: ConcurrencyConflict
    disconnected = connection.dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if disconnected:
        connection.invalidate(error)
    raise exc.DBAPIError.instance(statement, parameters, error, psycopg.Error, connection_invalidated=disconnected,
                                  dialect=connection.dialect) from error


def _read_whole(state) -> bool:
    """Its key and version are loaded and nothing of it is expired (a row read in part is left to the flush)."""
    values = state.dict
    return (not state.expired_attributes and "id" in values
            and (state.mapper.version_id_col is None or "version" in values))


def _insert(writes: Writes, state) -> None:
    table, values = state.mapper.local_table, state.dict
    for column in _columns_with_defaults(table):
        if column.key not in values:
            values[column.key] = _default(column)
    if state.mapper.version_id_col is not None and values.get("version") is None:
        values["version"] = 1  # the ORM's first version
    generated = _generated_key(table, values)
    names, json = _insert_columns(table, generated), _json_columns(table)
    # as the ORM: a JSON attribute set to None is JSON null, one never set is SQL NULL
    def keep_generated_key(result: Result) -> None:
        values[generated] = result.value  # the key the database gave the row

    writes.add(_insert_sql(table, names, generated), {
        name: Jsonb(values[name]) if name in json and name in values else values.get(name) for name in names},
        keep_generated_key if generated is not None else None)


def _update(writes: Writes, state) -> None:
    table, values = state.mapper.local_table, state.dict
    changed = tuple(sorted(key for key, old in state.committed_state.items()
                           if key in values and values[key] is not old and values[key] != old))
    versioned = state.mapper.version_id_col is not None
    if not changed and not versioned:
        return
    json = _json_columns(table)
    parameters = {name: Jsonb(values[name]) if name in json else values[name] for name in changed}
    parameters["_key"] = values["id"]
    if versioned:
        read = state.committed_state.get("version", values["version"])
        values["version"] = parameters["version"] = read + 1
        parameters["_version"] = read
        changed = tuple(name for name in changed if name != "version")
    writes.add(_update_sql(table, changed, versioned), parameters)


@functools.cache
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(column.key for column in table.columns if isinstance(column.type, JSON))


def _generated_key(table: Table, values: dict[str, Any]) -> str | None:
    """The autoincremented primary key when the new row has no value for it (the database gives it one)."""
    column = table.autoincrement_column
    return column.key if column is not None and values.get(column.key) is None else None


@functools.cache
def _insert_columns(table: Table, generated: str | None) -> tuple[str, ...]:
    """Every column but a key the database generates."""
    return tuple(column.key for column in table.columns if column.key != generated)


@functools.cache
def _columns_with_defaults(table: Table) -> tuple:
    return tuple(column for column in table.columns if column.default is not None)


def _bound_default(column, json: frozenset[str]) -> Any:
    value = _default(column)
    return Jsonb(value) if column.key in json else value


def _default(column) -> Any:
    default = column.default
    if default.is_callable:
        return default.arg(None)
    return default.arg


@functools.cache
def _insert_sql(table: Table, names: tuple[str, ...], generated: str | None = None) -> str:
    statement = table.insert().inline().values({name: bindparam(name) for name in names})
    return compiled(statement.returning(table.c[generated]) if generated else statement).text


@functools.lru_cache(maxsize=256)
def _insert_rows_sql(table: Table, names: tuple[str, ...], count: int) -> str:
    """INSERT of `count` rows; the values of row i are bound as `<column>_<i>`."""
    rows = [{name: bindparam(f"{name}_{number}") for name in names} for number in range(count)]
    return compiled(table.insert().values(rows)).text


@functools.cache
def _update_sql(table: Table, names: tuple[str, ...], versioned: bool) -> str:
    """The UPDATE of one row by key (and the version read), checked by the database: its row count goes to
    `bpm_expect_one_row` (migration 0016), which fails the statement with STALE_ROW unless it is one, as the
    flush's check would (a version another command changed first, a row deleted meanwhile)."""
    assignments = {name: bindparam(name) for name in names}
    condition = [table.c.id == bindparam("_key")]
    if versioned:
        assignments["version"] = bindparam("version")
        condition.append(table.c.version == bindparam("_version"))
    updated = table.update().values(assignments).where(*condition).returning(literal_column("1")).cte("updated")
    matched = sql_select(func.count()).select_from(updated).scalar_subquery()
    what = literal_column(f"'UPDATE of {table.name} '").concat(cast(bindparam("_key"), Text))
    return compiled(sql_select(func.bpm_expect_one_row(matched, what))).text


STALE_ROW = "BP001"  # the SQLSTATE of bpm_expect_one_row's error


@dataclass(frozen=True)
class DriverStatement:
    """SQL text as SQLAlchemy would send it (psycopg's named placeholders), with what it needs besides the caller's
    values: the values of the parameters the statement holds itself (literals), and for each expanded list
    parameter, which of its values each placeholder takes."""

    text: str
    own_values: dict[str, Any]
    list_slots: dict[str, tuple[str, int]]

    def parameters(self, values: dict[str, Any]) -> dict[str, Any]:
        bound = {**self.own_values, **values}
        for placeholder, (name, index) in self.list_slots.items():
            bound[placeholder] = values[name][index]
        return bound


def compiled(statement, list_lengths: dict[str, int] | None = None) -> DriverStatement:
    """Compile a Core statement for the driver. Its expanding parameters (`bindparam(..., expanding=True)`) are
    compiled for the number of values given in `list_lengths`, so the text is the one SQLAlchemy sends for lists
    of those lengths and keeps PostgreSQL's cached plan (an array parameter instead is planned anew at each
    execution). Callers keep the result per shape."""
    if not list_lengths:
        result = statement.compile(dialect=_DIALECT)
        return DriverStatement(str(result), {name: value for name, value in result.params.items()
                                             if value is not None}, {})
    # Expanding needs values: each list gets markers naming its slots, every other parameter the caller binds
    # gets a marker too (its placeholder keeps its name).
    plain = statement.compile(dialect=_DIALECT)
    samples = {name: _slot_marker(name, -1) for name, value in plain.params.items() if value is None}
    samples.update({name: [_slot_marker(name, index) for index in range(length)]
                    for name, length in list_lengths.items()})
    expanded = plain.construct_expanded_state(samples)
    slots, own = {}, {}
    for placeholder, value in expanded.parameters.items():
        if isinstance(value, str) and value.startswith(_MARKER):
            name, index = value[len(_MARKER):].rsplit(":", 1)
            if int(index) >= 0:
                slots[placeholder] = (name, int(index))
        elif value is not None:
            own[placeholder] = value
    return DriverStatement(expanded.statement, own, slots)


_MARKER = "\x00slot:"


def _slot_marker(name: str, index: int) -> str:
    return f"{_MARKER}{name}:{index}"


_DIALECT = psycopg_dialect.dialect()


def driver_dialect():
    """The dialect statements are compiled with for the driver (PostgreSQL, psycopg)."""
    return _DIALECT
