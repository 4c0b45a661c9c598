"""PostgreSQL: a command's own rows written by statements compiled once, on the transaction's psycopg connection.

Every command writes the same few rows: its instance (state, version, status), the tasks it completes and
creates, an approver's decision record, its history rows, and a new task's recipients with their in-app rows.
Through the ORM's flush and SQLAlchemy's execution layer each of them costs the unit of work's bookkeeping and
an execution context around the driver call, about as much CPU again as psycopg and PostgreSQL take for the
statement. Here they are sent on the driver directly, as the SQL text SQLAlchemy itself compiles for them (so
PostgreSQL sees the same prepared statements):
- `write_hot_rows`, at commit before the flush: one INSERT per new row and one UPDATE of the changed columns per
  changed row of the HOT_MODELS, then the objects are marked as written; the flush that follows only writes the
  command's other rows (signers, timers, ...), after these, so rows that refer to a task or an instance find it;
- `insert_rows`: appended rows (bpm.adapters.unit_of_work.write_appended), one executemany per run;
- `fetch_on_driver`: a statement compiled once per shape with `compiled` (the recipients statement).

Semantics kept from the flush:
- the instance's version check (`version_id_col`): the UPDATE names the version read, sets the next one, and a row
  count other than one raises StaleDataError, which the unit of work turns into ConcurrencyConflict;
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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Table, bindparam, exc
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.exc import StaleDataError

from bpm.adapters.db import READ_ONLY, WROTE
from bpm.adapters.orm import ProcessInstance, Task
from bpm.adapters.orm_approvals import ApprovalRecord

# In the order they are written: a task refers to its instance, an approver's decision to its task.
HOT_MODELS = (ProcessInstance, Task, ApprovalRecord)


def write_hot_rows(session: Session) -> None:
    """Write the session's new and changed rows of the HOT_MODELS (PostgreSQL), and mark them written."""
    new = [state_of(row) for row in session.new if type(row) in HOT_MODELS]
    changed = [state for state in map(state_of, session.dirty) if state.class_ in HOT_MODELS and _read_whole(state)]
    if not (new or changed) or any(type(row) in HOT_MODELS for row in session.deleted):
        return
    connection = _writable_connection(session)
    if connection is None:
        return
    with _driver(connection) as execute:
        for model in HOT_MODELS:
            for state in new:
                if state.class_ is model:
                    _insert(execute, state)
            for state in changed:
                if state.class_ is model:
                    _update(execute, state)
    # As the flush ends: new rows become persistent, and every written row's values become its committed state
    # (also noted on the transaction, so a rollback expires them).
    session._register_persistent({*new, *changed})


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> bool:
    """Insert append-only rows of one table and the same columns (history, archive chunks) in one executemany on
    the driver, with the table's column defaults for the columns they leave out. False (nothing done) where the
    session is not a writing one on PostgreSQL: the caller inserts them itself."""
    names = tuple(rows[0])
    connection = _writable_connection(session)
    if connection is None:
        return False
    defaults = [column for column in _columns_with_defaults(table) if column.key not in rows[0]]
    json = _json_columns(table)
    values = [{**{name: Jsonb(row[name]) if name in json else row[name] for name in names},
               **{column.key: _bound_default(column, json) for column in defaults}} for row in rows]
    with _driver(connection) as execute:
        execute(_insert_sql(table, names + tuple(column.key for column in defaults)), values, many=True)
    return True


def _writable_connection(session: Session):
    """The transaction's connection when it is PostgreSQL's and may write (else None: left to SQLAlchemy)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql" or connection.get_execution_options().get(READ_ONLY):
        return None
    connection.info[WROTE] = True  # no SQLAlchemy event sees the statements sent here
    return connection


def fetch_on_driver(session: Session, statement: DriverStatement, values: dict[str, Any]) -> list[tuple] | None:
    """Run a statement compiled with `compiled` on the driver, with these values, and return its rows; None
    (nothing done) where the session is not a writing one on PostgreSQL."""
    connection = _writable_connection(session)
    if connection is None:
        return None
    with _driver(connection) as execute:
        return execute(statement.text, statement.parameters(values)).fetchall()


@contextmanager
def _driver(connection):
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


state_of = attributes.instance_state


def _raise_as_sqlalchemy_does(connection, cursor, statement: str, parameters, error: psycopg.Error):
    """What SQLAlchemy's own execution raises for a driver error: its exception class for it (IntegrityError for
    a unique violation, which callers catch), and a connection the database dropped is invalidated, so the pool
    replaces it."""
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


def _insert(execute, state) -> None:
    table, values = state.mapper.local_table, state.dict
    for column in _columns_with_defaults(table):
        if column.key not in values:
            values[column.key] = _default(column)
    if state.mapper.version_id_col is not None and values.get("version") is None:
        values["version"] = 1  # the ORM's first version
    generated = _generated_key(table, values)
    names, json = _insert_columns(table, generated), _json_columns(table)
    # as the ORM: a JSON attribute set to None is JSON null, one never set is SQL NULL
    inserted = execute(_insert_sql(table, names, generated), {
        name: Jsonb(values[name]) if name in json and name in values else values.get(name) for name in names})
    if generated is not None:
        values[generated] = inserted.fetchone()[0]  # the key the database gave the row


def _update(execute, state) -> None:
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
    matched = execute(_update_sql(table, changed, versioned), parameters).rowcount
    if matched != 1:
        raise StaleDataError(f"UPDATE of {table.name} {values['id']!r} matched {matched} rows, expected 1")


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


@functools.cache
def _update_sql(table: Table, names: tuple[str, ...], versioned: bool) -> str:
    assignments = {name: bindparam(name) for name in names}
    condition = [table.c.id == bindparam("_key")]
    if versioned:
        assignments["version"] = bindparam("version")
        condition.append(table.c.version == bindparam("_version"))
    return compiled(table.update().values(assignments).where(*condition)).text


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
