"""The PostgreSQL engine's cursors describe a result's columns only when asked (bpm.adapters.psycopg_cursor):
what they describe must be exactly what psycopg's own cursor says, for the result they were read for."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import text

from bpm.adapters.db import make_engine
from bpm.adapters.psycopg_cursor import LazyDescriptionCursor

ROWS = "SELECT 1 AS a, 'x'::varchar(7) AS b, now() AS c, ARRAY[1.5]::numeric(5, 2)[] AS d"


@contextmanager
def _raw_connection(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            yield connection.connection.dbapi_connection
    finally:
        engine.dispose()


def _described(description):
    return [tuple(column) for column in description]


def test_the_engines_cursors_describe_lazily_and_like_psycopg(postgres_url):
    with _raw_connection(postgres_url) as raw:
        cursor = raw.cursor()
        assert isinstance(cursor, LazyDescriptionCursor)
        plain = psycopg.Cursor(raw)
        for statement in (ROWS, "SELECT", "SELECT 1 WHERE false"):
            cursor.execute(statement)
            plain.execute(statement)
            assert _described(cursor.description) == _described(plain.description)
            assert len(cursor.description) == len(plain.description)
            assert bool(cursor.description) == bool(plain.description)
        cursor.execute("CREATE TEMPORARY TABLE described (a int)")
        assert cursor.description is None


def test_a_description_read_before_the_cursor_moves_on_keeps_its_result(postgres_url):
    with _raw_connection(postgres_url) as raw:
        plain = psycopg.Cursor(raw)
        plain.execute(ROWS)
        cursor = raw.cursor()
        cursor.execute(ROWS)
        first = cursor.description  # nothing built yet
        cursor.execute("SELECT 2 AS other")
        assert _described(first) == _described(plain.description)
        assert [column.name for column in first] == ["a", "b", "c", "d"] and first[1].display_size == 7
        assert [column.name for column in cursor.description] == ["other"]


def test_sqlalchemy_results_keep_their_columns(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            for _ in range(2):  # the second run takes the compiled statement's cached metadata
                result = connection.execute(text(ROWS))
                assert list(result.keys()) == ["a", "b", "c", "d"]
                row = result.one()
                assert row.a == 1 and row.b == "x"
            driver = connection.exec_driver_sql("SELECT 3 AS n, 4 AS m")
            assert list(driver.keys()) == ["n", "m"] and driver.one() == (3, 4)
    finally:
        engine.dispose()


@pytest.mark.parametrize("index", [0, -1, slice(0, 2)])
def test_a_lazy_description_indexes_like_a_list(postgres_url, index):
    with _raw_connection(postgres_url) as raw:
        cursor = raw.cursor()
        plain = psycopg.Cursor(raw)
        cursor.execute(ROWS)
        plain.execute(ROWS)
        lazy, eager = cursor.description[index], plain.description[index]
        if isinstance(index, slice):
            assert _described(lazy) == _described(eager)
        else:
            assert tuple(lazy) == tuple(eager)
