"""The floor of the server's own statements: what (b) would cost with the same SQL and no Python data layer.

    .venv/bin/python benchmarks/sql_floor.py [--rounds 5] [--instances 100]

Records the statements of one 3-approval instance as the service layer sends them (row (b) of
benchmarks/engine_vs_server.py: start + 3 completions, one transaction each; 21 statements), then, in each round,
one after the other on the same database:
  (a)    pure SpiffWorkflow, as in engine_vs_server.py (the floor of the issue's ratio);
  (a2)   bpm.engine alone: restore, complete, snapshot (the engine part of a step);
  (b)    the service layer (SQLAlchemy ORM + Core, handlers, projection, engine);
  (sql)  the recorded statements replayed through psycopg alone: the same SQL text and parameters, prepared
         statements, one transaction per step, every result fetched; ids and business keys replaced by fresh ones
         per instance, and each versioned UPDATE checked to change one row as in (b);
  (sql-sa) the same replay through SQLAlchemy's execution layer on the service layer's engine
         (`exec_driver_sql`: no ORM, no statement building or compiling);
  (sql-pipe) the psycopg replay with a step's statements sent together (pipeline mode), results read and the
         versioned UPDATE checked after one sync, then COMMIT: two round trips per step;
  (sql-1rt) the same with COMMIT sent with the statements: one round trip per step, the least any design of
         "one round trip per command" could cost with these statements.
(sql) is what the database work of (b) costs with no SQLAlchemy, no ORM and no handler code around it:
round trips, PostgreSQL's own work and psycopg. (a2) + (sql) is the least a step can cost with these
statements, so ((a2) + (sql)) / (a) is the best (b)/(a) any data layer in Python could reach without sending
fewer or cheaper statements. Reports ms per step (median of the rounds) with this process's CPU and the
PostgreSQL backends' CPU for (b) and (sql) (for (b) it includes the benchmark's 3 next-task lookups per instance).
Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from dataclasses import dataclass, field

import psycopg
from _common import THREE_APPROVALS, backend_cpu_seconds, driver_statements, libpq_url, private_database, seed
from engine_vs_server import LOOKUP, STEPS_PER_INSTANCE, PureEngine, ServerEngine, ServiceLayer
from sqlalchemy import text

FRESH = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$")


@dataclass
class Statement:
    sql: str
    parameters: object
    many: bool


@dataclass
class Recording:
    steps: list[list[Statement]] = field(default_factory=list)

    def statements(self) -> int:
        return sum(len(step) for step in self.steps)


def record_instance(layer: ServiceLayer) -> Recording:
    """The statements of one instance, step by step, as psycopg receives them (SQLAlchemy's and those the server
    sends on the driver itself)."""
    recording = Recording()
    with driver_statements(layer.context.engine) as sent:
        def next_step() -> None:
            recording.steps.append([])
            sent.clear()

        def keep_step() -> None:
            recording.steps[-1] = [Statement(sql, parameters, many) for sql, parameters, many in sent
                                   if not sql.startswith(LOOKUP)]

        layer.timed_instance(before_call=lambda: (keep_step() if recording.steps else None, next_step()))
        keep_step()
    return recording


class Replay:
    """The recorded statements through one psycopg connection, with fresh ids for every instance."""

    def __init__(self, conninfo: str, recording: Recording):
        self.connection = psycopg.connect(conninfo)
        self.recording = recording

    def run_instance(self) -> tuple[float, float]:
        """(wall, CPU) seconds inside the four transactions; the parameters are renamed before."""
        fresh: dict[str, str] = {}
        steps = [[(statement, _renamed(statement.parameters, fresh)) for statement in step]
                 for step in self.recording.steps]
        wall = cpu = 0.0
        for step in steps:
            began, began_cpu = time.perf_counter(), time.process_time()
            self.run_step(step)
            wall, cpu = wall + time.perf_counter() - began, cpu + time.process_time() - began_cpu
        return wall, cpu

    def run_step(self, step: list[tuple[Statement, object]]) -> None:
        with self.connection.cursor() as cursor:
            for statement, parameters in step:
                if statement.many:
                    cursor.executemany(statement.sql, parameters)
                    continue
                cursor.execute(statement.sql, parameters, prepare=True)
                if cursor.description is not None:
                    cursor.fetchall()
                _check_versioned(statement, cursor.rowcount)
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


class ReplayPipelined(Replay):
    """The same replay with each step's statements sent together in psycopg's pipeline mode: one round trip for
    the statements, their results read after one sync, each versioned UPDATE checked, then COMMIT (a second round
    trip); with `commit_too`, COMMIT goes in the same round trip as the statements (a design whose version check
    fails inside the database, so nothing has to be read before committing). What "one round trip per command"
    would save, with the same statements."""

    def __init__(self, conninfo: str, recording: Recording, commit_too: bool = False):
        super().__init__(conninfo, recording)
        self.commit_too = commit_too

    def run_step(self, step: list[tuple[Statement, object]]) -> None:
        connection = self.connection
        with connection.pipeline() as pipeline:
            sent = []
            for statement, parameters in step:
                cursor = connection.cursor()
                if statement.many:
                    cursor.executemany(statement.sql, parameters)
                else:
                    cursor.execute(statement.sql, parameters, prepare=True)
                sent.append((statement, cursor))
            if self.commit_too:
                connection.commit()
            pipeline.sync()
            for statement, cursor in sent:
                if cursor.description is not None:
                    cursor.fetchall()
                if not statement.many:
                    _check_versioned(statement, cursor.rowcount)
                cursor.close()
            if not self.commit_too:
                connection.commit()


class ReplayThroughSqlalchemy(Replay):
    """The same replay through SQLAlchemy's execution layer (`exec_driver_sql`: pool checkout, execution context,
    result set-up, the project's connection events) on the service layer's own engine, without the ORM and
    without building or compiling statements: what SQLAlchemy Core alone adds to each round trip."""

    def __init__(self, engine, recording: Recording):
        self.engine = engine
        self.recording = recording

    def run_step(self, step: list[tuple[Statement, object]]) -> None:
        with self.engine.begin() as connection:
            for statement, parameters in step:
                result = connection.exec_driver_sql(statement.sql, parameters)
                if result.returns_rows:
                    result.all()
                elif not statement.many:
                    _check_versioned(statement, result.rowcount)

    def close(self) -> None:
        pass


def _check_versioned(statement: Statement, rowcount: int) -> None:
    if statement.sql.startswith("UPDATE process_instances") and rowcount != 1:
        raise RuntimeError(f"the versioned UPDATE changed {rowcount} rows: the replay went wrong")


def _renamed(parameters, fresh: dict[str, str]):
    """The parameters with every id and business key replaced by this instance's own (same old -> same new)."""
    if isinstance(parameters, dict):
        return {key: _renamed(value, fresh) for key, value in parameters.items()}
    if isinstance(parameters, (list, tuple)):
        return type(parameters)(_renamed(value, fresh) for value in parameters)
    if isinstance(parameters, str) and FRESH.match(parameters):
        return fresh.setdefault(parameters, str(uuid.uuid4()) if "-" in parameters else uuid.uuid4().hex)
    return parameters


def timed(run, instances: int, backends) -> dict[str, float]:
    """ms per step: wall and this process's CPU inside the timed calls, PostgreSQL's CPU over the whole loop."""
    pg_before = backends()
    wall = cpu = 0.0
    for _ in range(instances):
        spent_wall, spent_cpu = run()
        wall, cpu = wall + spent_wall, cpu + spent_cpu
    steps = instances * STEPS_PER_INSTANCE
    return {"wall": wall * 1000 / steps, "cpu": cpu * 1000 / steps, "pg": (backends() - pg_before) * 1000 / steps}


def timed_engine(run, instances: int) -> dict[str, float]:
    began = time.perf_counter()
    for _ in range(instances):
        run()
    return {"wall": (time.perf_counter() - began) * 1000 / (instances * STEPS_PER_INSTANCE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instances", type=int, default=100)
    args = parser.parse_args()
    xml = THREE_APPROVALS.read_bytes()
    with private_database("bench_sql_floor") as (url, name):
        seed(url)
        layer = ServiceLayer(url)
        with layer.context.engine.connect() as connection:
            spec_json = connection.execute(text(
                "SELECT spec_json FROM process_definitions WHERE key = 'three_approvals'")).scalar_one()
        pure, server_engine = PureEngine(xml), ServerEngine(spec_json)
        for _ in range(20):  # warm-up: caches, prepared statements
            pure.run_instance()
            server_engine.run_instance()
            layer.run_instance()
        recording = record_instance(layer)
        replay = Replay(libpq_url(url), recording)
        replay_sqlalchemy = ReplayThroughSqlalchemy(layer.context.engine, recording)
        pipelined = ReplayPipelined(libpq_url(url), recording)
        pipelined_commit = ReplayPipelined(libpq_url(url), recording, commit_too=True)
        for _ in range(20):
            for replaying in (replay, replay_sqlalchemy, pipelined, pipelined_commit):
                replaying.run_instance()

        def backends() -> float:
            return backend_cpu_seconds(url, name)

        rounds = []
        for index in range(args.rounds):
            row = {"a": timed_engine(pure.run_instance, args.instances),
                   "a2": timed_engine(server_engine.run_instance, args.instances),
                   "b": timed(layer.timed_instance, args.instances, backends),
                   "sql": timed(replay.run_instance, args.instances, backends),
                   "sql_sa": timed(replay_sqlalchemy.run_instance, args.instances, backends),
                   "sql_pipe": timed(pipelined.run_instance, args.instances, backends),
                   "sql_1rt": timed(pipelined_commit.run_instance, args.instances, backends)}
            rounds.append(row)
            print(f"round {index + 1}: " + ", ".join(f"{path} {values['wall']:.2f} ms/step"
                                                      for path, values in row.items()), flush=True)
        for replaying in (replay, pipelined, pipelined_commit):
            replaying.close()
        layer.context.engine.dispose()
    report(rounds, recording)


def report(rounds: list[dict], recording: Recording) -> None:
    def median(path: str, measure: str) -> float:
        return statistics.median(row[path][measure] for row in rounds)

    a, a2 = median("a", "wall"), median("a2", "wall")
    print(f"\n{len(rounds)} rounds; statements per instance: {recording.statements()} "
          f"({', '.join(str(len(step)) for step in recording.steps)} per step), plus a COMMIT per step")
    print("| path | ms per step (wall) | client CPU ms | PostgreSQL CPU ms | time per step vs (a) |")
    print("|---|---|---|---|---|")
    print(f"| (a) pure SpiffWorkflow | {a:.2f} | | | 1.00 |")
    print(f"| (a2) bpm.engine | {a2:.2f} | | | {a2 / a:.2f} |")
    for path, label in (("b", "(b) service layer"), ("sql", "(sql) its statements through psycopg alone"),
                        ("sql_sa", "(sql-sa) the same through SQLAlchemy's execution layer"),
                        ("sql_pipe", "(sql-pipe) the same, a step's statements in one round trip, then COMMIT"),
                        ("sql_1rt", "(sql-1rt) the same with COMMIT in that round trip")):
        print(f"| {label} | {median(path, 'wall'):.2f} | {median(path, 'cpu'):.2f} | {median(path, 'pg'):.2f} | "
              f"{median(path, 'wall') / a:.2f} |")
    floor = [(row["a2"]["wall"] + row["sql"]["wall"]) / row["a"]["wall"] for row in rounds]
    print(f"| (a2) + (sql): the least a step costs with these statements | {a2 + median('sql', 'wall'):.2f} | | | "
          f"{statistics.median(floor):.2f} |")
    for path in ("sql_pipe", "sql_1rt"):
        least = [(row["a2"]["wall"] + row[path]["wall"]) / row["a"]["wall"] for row in rounds]
        print(f"| (a2) + ({path.replace('_', '-')}) | {a2 + median(path, 'wall'):.2f} | | | "
              f"{statistics.median(least):.2f} |")
    shares = [(row["b"]["wall"] - row["a2"]["wall"] - row["sql"]["wall"]) / row["b"]["wall"] for row in rounds]
    print(f"share of (b)'s time outside the engine and the statements (the Python data layer and handlers), "
          f"median of the rounds: {statistics.median(shares):.0%}")
    executing = [(row["sql_sa"]["wall"] - row["sql"]["wall"]) / row["b"]["wall"] for row in rounds]
    print(f"  of which SQLAlchemy's execution layer ((sql-sa) - (sql)): {statistics.median(executing):.0%}; the rest "
          f"is the ORM (building, loading, flushing objects), statement building and the handlers' Python")


if __name__ == "__main__":
    main()
