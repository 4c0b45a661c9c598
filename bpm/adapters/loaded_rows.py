"""Reads on the hot path as Core rows on the session's connection, and the ORM objects in such a row entered in the
session the way the ORM's own loading enters them.

`Session.execute` runs even a Core SELECT through the ORM's execution path: a compile state and a row processor
per column, built anew at every execution. On the completion's one-row load (a task, its instance and its
definition) that path cost about a third of the call's CPU (BENCHMARKS.md, "Engine floor vs server", fourteenth
round). Here the same SELECT runs on the session's connection (the same SQL, so the same prepared statement; on
psycopg on the driver itself, past SQLAlchemy's execution: see "on the driver" below), and `objects` turns the
row's columns into the objects of their models:
- the object the session already holds for the row's primary key is returned as it is (what the ORM does without
  `populate_existing`), so a command that loaded or created a row earlier keeps its own changes;
- otherwise a new persistent object as `sqlalchemy.orm.loading` makes one: a new instance with its identity key
  in the session's identity map, the row's values as its loaded (committed) state, and each column left out of
  the SELECT loaded on first access by the same per-object loader a `defer()` option installs.
The objects then behave as loaded ones: changes are tracked, the writes (bpm.adapters.hot_rows or the flush)
compare with the loaded values, a rollback expires them. This relies on SQLAlchemy's instance state, as the
flush's end in hot_rows does; SQLAlchemy is pinned below 2.2 and tests/integration/test_loaded_rows.py checks
those outcomes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.orm.base import instance_state

from bpm.adapters import hot_rows
from bpm.adapters.db import POOLED_READS


@dataclass(frozen=True)
class Loaded:
    """Where one model's columns sit in a row: its mapped columns in mapper order, but `unloaded`."""

    model: type
    columns: tuple[Column, ...]
    keys: tuple[str, ...]  # the attribute key of each column
    unloaded: tuple[str, ...]  # attributes loaded on first access
    key_positions: tuple[int, ...]  # where the primary key's columns are among `columns`

    @property
    def width(self) -> int:
        return len(self.columns)


def loaded(model: type, unloaded: Sequence[str] = ()) -> Loaded:
    """The columns a SELECT reads for `model` (every mapped column but those named in `unloaded`)."""
    properties = [prop for prop in model.__mapper__.column_attrs if prop.key not in unloaded]
    unknown = set(unloaded) - {prop.key for prop in model.__mapper__.column_attrs}
    if unknown:
        raise ValueError(f"{model.__name__} has no column attribute {', '.join(sorted(unknown))}")
    selected = tuple(prop.columns[0] for prop in properties)
    return Loaded(model, selected, tuple(prop.key for prop in properties), tuple(unloaded),
                  tuple(_position(selected, column) for column in model.__mapper__.primary_key))


def _position(selected: tuple[Column, ...], column: Column) -> int:
    """By identity: a column's == builds an SQL expression."""
    return next(index for index, candidate in enumerate(selected) if candidate is column)


def columns(*shapes: Loaded) -> list[Column]:
    """The columns of `shapes`, in order: the start of a SELECT whose rows `objects` reads."""
    return [column for shape in shapes for column in shape.columns]


def first_row(session: Session, statement, parameters: dict[str, Any]) -> Row | DriverRow | None:
    """The first row of a Core SELECT run on the session's connection (its transaction): on psycopg on the
    driver itself, else through SQLAlchemy's execution; in a read-only unit of work whose session has not begun,
    on a pooled connection of its own (see "read on a pooled connection" below)."""
    return _read(session, statement, parameters, first=True)


def all_rows(session: Session, statement, parameters: dict[str, Any]) -> list[Row] | list[DriverRow]:
    """Every row of a Core SELECT, read where `first_row` reads."""
    return _read(session, statement, parameters, first=False)


def _read(session: Session, statement, parameters: dict[str, Any], first: bool):
    pooled = _pooled_reads(session)
    connection = hot_rows.PooledConnection(pooled) if pooled is not None else session.connection()
    try:
        if connection.dialect.driver != "psycopg":
            result = connection.execute(statement, parameters)
            return result.first() if first else list(result)
        with _on_driver(connection, statement, parameters) as (cursor, row_type):
            if first:
                row = cursor.fetchone()
                return None if row is None else row_type(row)
            return [row_type(row) for row in cursor.fetchall()]
    finally:
        if pooled is not None:
            connection.close()  # back to its pool once the rows are read


# --- on the driver (PostgreSQL with psycopg) -------------------------------------------------------------------
# A SELECT is compiled once per length of its list parameters, as SQLAlchemy compiles it, and sent on the
# transaction's psycopg cursor: SQLAlchemy's execution around the same driver call (its execution context, the
# compiled cache's lookup, its result object) cost about as much CPU as psycopg's own part (BENCHMARKS.md,
# "Engine floor vs server", fourteenth round). A driver error is raised as SQLAlchemy raises it, and a dropped
# connection is invalidated (hot_rows.driver). The statements read here have no result processors on psycopg
# (each column's type converts nothing after the driver); `_driver_shape` refuses one that has.
#
# Read on a pooled connection: a read-only unit of work on PostgreSQL (the API's GET requests) whose session has
# not begun sends such a read on a connection of its own, taken from a pool whose connections stay in the
# driver's autocommit (bpm.adapters.db.pooled_reads_engine) and given back when its rows are read. The read is what
# it is on the session's connection, a SELECT outside a transaction, without the session's connection around it:
# SQLAlchemy's Connection, its transaction, the change of the connection's mode to autocommit and back, and their
# events cost about as much CPU as the inbox page's read itself (BENCHMARKS.md, "Engine floor vs server",
# eighteenth round). Once the session has begun, its reads stay on its connection.


@dataclass(frozen=True)
class _DriverShape:
    text: hot_rows.DriverStatement
    row: type  # tuple subclass: index, slice, or read a column by its label as an attribute


class DriverRow(tuple):
    """A row read on the driver, with the part of SQLAlchemy's Row its readers use: indexing, slicing, each
    selected column's label as an attribute (the first of duplicate labels), and `_mapping`."""

    __slots__ = ()
    _positions: dict[str, int] = {}

    @property
    def _mapping(self) -> dict[str, Any]:
        return {name: self[position] for name, position in type(self)._positions.items()}

    def __getattr__(self, name: str) -> Any:
        position = type(self)._positions.get(name)
        if position is None:
            raise AttributeError(name)
        return self[position]


def _pooled_reads(session: Session):
    """The engine whose pooled connections this read takes (see "read on a pooled connection" above), or None."""
    engine = session.info.get(POOLED_READS)
    return None if engine is None or session.in_transaction() else engine


@contextmanager
def _on_driver(connection, statement, parameters: dict[str, Any]):
    """(cursor, row type) of the statement run on the connection's psycopg cursor."""
    shape = _driver_shape(statement, _list_lengths(statement, parameters))
    with hot_rows.reading(connection, shape.text.text, shape.text.parameters(parameters)) as cursor:
        yield cursor, shape.row


def _list_lengths(statement, parameters: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple((name, len(parameters[name])) for name in _list_parameters(statement))


@functools.lru_cache(maxsize=64)
def _list_parameters(statement) -> tuple[str, ...]:
    """The statement's expanding parameters (`bindparam(..., expanding=True)`)."""
    return tuple(sorted({bind.key for bind in statement.compile(dialect=hot_rows.driver_dialect()).binds.values()
                         if bind.expanding}))


@functools.lru_cache(maxsize=256)
def _driver_shape(statement, list_lengths: tuple[tuple[str, int], ...]) -> _DriverShape:
    columns = list(statement.selected_columns)
    dialect = hot_rows.driver_dialect()
    converting = [column for column in columns if column.type.result_processor(dialect, None) is not None]
    if converting:
        raise ValueError(f"columns {', '.join(str(c) for c in converting)} convert their values after the driver: "
                         "read them through SQLAlchemy")
    positions: dict[str, int] = {}
    for position, column in enumerate(columns):
        positions.setdefault(column.key, position)
    row = type("DriverRow", (DriverRow,), {"__slots__": (), "_positions": positions})
    return _DriverShape(hot_rows.compiled(statement, dict(list_lengths)), row)


def objects(session: Session, row: Sequence[Any], *shapes: Loaded) -> list[Any]:
    """The object of each shape, from the row's columns in the order `columns` put them (an object per shape;
    a shape whose primary key is NULL gives None, as an outer join's missing side does in the ORM)."""
    found, start = [], 0
    for shape in shapes:
        found.append(_persistent(session, shape, row[start:start + shape.width]))
        start += shape.width
    return found


def _persistent(session: Session, shape: Loaded, values: Sequence[Any]) -> Any:
    mapper = shape.model.__mapper__
    key_values = tuple(values[position] for position in shape.key_positions)
    if None in key_values:
        return None
    identity = (mapper._identity_class, key_values, None)
    held = session.identity_map.get(identity)
    if held is not None:
        return held
    instance = mapper.class_manager.new_instance()
    state = instance_state(instance)
    state.key, state.identity_token, state.session_id = identity, None, session.hash_key
    session.identity_map.add(state)
    dict_ = state.dict
    dict_.update(zip(shape.keys, values, strict=True))
    for key in shape.unloaded:
        mapper.attrs[key]._deferred_column_loader(state, dict_, None)
    return instance
