"""A psycopg cursor whose `description` describes its columns only when someone reads them.

psycopg builds one `Column` object per result column each time `cursor.description` is read (about 1.6 µs a
column: 90 µs for the 55 columns of a task's completion load). SQLAlchemy reads it after every statement that
returns rows, but for a statement it has run before it only checks that the description is not None: the
result's columns come from the compiled statement's cached metadata. This cursor returns a sequence that builds
the Column objects on first use, from the result it was read for, so the common case builds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Column, Cursor, pq

_RETURNS_ROWS = frozenset({pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK})


class LazyDescriptionCursor(Cursor):
    __slots__ = ()

    @property
    def description(self) -> Sequence[Column] | None:
        result = self.pgresult
        if result and (result.nfields or result.status in _RETURNS_ROWS):
            return LazyDescription(_ResultOf(self, result), result.nfields)
        return None


class _ResultOf:
    """What `Column` reads of a cursor, pinned to one result (the cursor may have moved on when it is read)."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor: Cursor, result: pq.abc.PGresult):
        self.pgresult, self._encoding, self.adapters = result, cursor._encoding, cursor.adapters


class LazyDescription(Sequence):
    """The list psycopg's `description` would return, built on first access."""

    __slots__ = ("_source", "_count", "_columns")

    def __init__(self, source: _ResultOf, count: int):
        self._source, self._count, self._columns = source, count, None

    def _built(self) -> list[Column]:
        if self._columns is None:
            self._columns = [Column(self._source, index) for index in range(self._count)]
        return self._columns

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self._built()[index]

    def __iter__(self):
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        return self._built() == list(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._built())
