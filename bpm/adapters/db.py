"""Database engines and schema migration, shared by the api, the workers and the tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from bpm.config import DatabaseTimeouts

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# A pooled connection idle for longer than this is checked with a round trip before a request gets it; one used
# more recently is trusted (HikariCP's aliveBypassWindowMs, 500 ms by default, makes the same trade).
PING_AFTER_IDLE_SECONDS = 0.5
_IDLE_SINCE = "bpm_idle_since"
READ_ONLY = "bpm_read_only"  # execution option of the engine that read-only units of work use
WROTE = "bpm_wrote"  # on a connection's info: a statement other than SELECT ran in its transaction
COMMITTED = "bpm_committed"  # on a connection's info: its COMMIT went with the writes (bpm.adapters.hot_rows)
LAZY_BEGIN = "bpm_lazy_begin"  # execution option of the engine that writing units of work use on PostgreSQL
BEGIN_PENDING = "bpm_begin_pending"  # on a connection's info: LAZY_BEGIN, and no BEGIN sent yet in this transaction
POOLED_READS = "bpm_pooled_reads"  # on a read-only session's info: the engine its driver reads take connections of


def begin_if_pending(connection) -> None:
    """Send the transaction's BEGIN now, if it is still to be sent (unit_of_work.session_factory)."""
    if connection.info.get(BEGIN_PENDING):
        connection.info[BEGIN_PENDING] = False
        connection.connection.dbapi_connection.execute("BEGIN")


def make_engine(database_url: str, ping_idle_connections: bool = True, timeouts: DatabaseTimeouts | None = None,
                **kwargs) -> Engine:
    """An engine for the database URL. On a server database, a connection that sat idle in the pool for more than
    PING_AFTER_IDLE_SECONDS is pinged when taken out (unless `ping_idle_connections` is false), and a failed ping
    replaces every pooled connection, so requests after a database restart or failover get fresh ones. On
    PostgreSQL, `timeouts` bound each session's waits (none given: the database's own settings apply)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, url.database, **kwargs)
    if timeouts is not None and url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _with_timeouts(url, kwargs.get("connect_args") or {}, timeouts)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(database_url, **kwargs)
    if url.get_driver_name() == "psycopg":
        event.listen(engine, "connect", _describe_results_lazily)
        event.listen(engine, "connect", _read_json_faster)
    if ping_idle_connections and not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


def pooled_reads_engine(engine: Engine, database_url: str, timeouts: DatabaseTimeouts | None = None) -> Engine | None:
    """On PostgreSQL with psycopg, an engine whose pool keeps its connections in the driver's autocommit, for the
    reads that read-only units of work send on a pooled connection of their own (bpm.adapters.loaded_rows): such
    a read needs no SQLAlchemy connection, transaction or change of the connection's mode around it. Disposed
    with `engine`. Elsewhere None."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() != "psycopg":
        return None
    reads = make_engine(database_url, timeouts=timeouts, isolation_level="AUTOCOMMIT")
    event.listen(engine, "engine_disposed", lambda _engine: reads.dispose())
    return reads


def _with_timeouts(url: URL, connect_args: dict, timeouts: DatabaseTimeouts) -> dict:
    """`connect_args` whose libpq startup `options` set the timeouts, so a new connection costs no extra round
    trip. The options the connection would have had otherwise come after them: a caller's own `-c` for one of
    these parameters wins."""
    settings = _startup_settings({"statement_timeout": timeouts.statement, "lock_timeout": timeouts.lock,
                                  "idle_in_transaction_session_timeout": timeouts.idle_in_transaction})
    return {**connect_args, "options": f"{settings} {_given_options(url, connect_args)}".strip()}


def _given_options(url: URL, connect_args: dict) -> str:
    """The libpq `options` a connection gets without ours: from connect_args, else the URL, else PGOPTIONS (libpq
    ignores PGOPTIONS once `options` is given, so it must be carried over)."""
    options = connect_args.get("options") or url.query.get("options") or os.environ.get("PGOPTIONS", "")
    return options if isinstance(options, str) else " ".join(options)  # a URL may repeat a query parameter


def _startup_settings(seconds_by_parameter: dict[str, float]) -> str:
    return " ".join(f"-c {name}={_milliseconds(seconds)}" for name, seconds in seconds_by_parameter.items())


def _milliseconds(seconds: float) -> int:
    """PostgreSQL's unit for these timeouts; a positive timeout never rounds down to 0, which means no limit."""
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


def _ping_idle_connections(engine: Engine) -> None:
    """Like `pool_pre_ping`, but only for connections idle longer than PING_AFTER_IDLE_SECONDS: under load a request no
    longer pays a round trip (and the database a transaction) just to learn that the connection it used a few
    milliseconds ago still works. A connection the database dropped since is found by the ping after any pause
    longer than that, which covers a restart; should a request still meet a dead connection, SQLAlchemy
    invalidates the whole pool on the error, so only requests already holding one can fail."""

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - whatever the driver raises, the connection is not usable
            raise exc.InvalidatePoolError(f"a pooled connection failed its ping: {error}") from error


def _describe_results_lazily(dbapi_connection, _record) -> None:
    from bpm.adapters.psycopg_cursor import LazyDescriptionCursor

    dbapi_connection.cursor_factory = LazyDescriptionCursor


def _read_json_faster(dbapi_connection, _record) -> None:
    """json and jsonb values are read by bpm.json_text: json.loads' values, in less CPU."""
    from psycopg.types.json import set_json_loads

    from bpm import json_text

    set_json_loads(json_text.loads, dbapi_connection)


def _sqlite_engine(database_url: str, path: str | None, **kwargs) -> Engine:
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
    event.listen(engine, "connect", _tune_sqlite)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _tune_sqlite(dbapi_connection, _record) -> None:
    # Autocommit at the driver level lets SQLAlchemy's "begin" hook issue BEGIN IMMEDIATE itself:
    # writers then queue on the database lock instead of failing with "database is locked" mid-transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection) -> None:
    # A unit of work that only reads (READ_ONLY, see unit_of_work.read_only_session_factory) does not take the
    # write lock: in WAL mode its deferred transaction reads a snapshot while writers go on.
    read_only = connection.get_execution_options().get(READ_ONLY)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", migration_url(database_url).replace("%", "%%"))
    return config


def migration_url(database_url: str) -> str:
    """The URL schema migrations connect with: on PostgreSQL without a statement or lock timeout, whatever the
    role, the database or PGOPTIONS set (ours come last and win), since building an index on a big table may
    take long and a migration must wait for the locks it needs rather than stop half-way."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return database_url
    unbounded = _startup_settings({"statement_timeout": 0, "lock_timeout": 0})
    options = f"{_given_options(url, {})} {unbounded}".strip()
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def migrate(database_url: str) -> None:
    """Bring the schema to the newest revision (the app and the tests build the schema only this way)."""
    command.upgrade(alembic_config(database_url), "head")
