"""Where a service step's time goes: wall time, this process's CPU and the PostgreSQL backends' CPU per step.

    .venv/bin/python benchmarks/service_cpu.py [--instances 150] [--rounds 3] [--against MODE]
        [--decide complete|approve]

Runs the (b) row of benchmarks/engine_vs_server.py (start + 3 completions of the 3-approval process through the
services, each its own transaction; with `--decide approve` the approvers use approve instead of the generic
complete) on its own database and reads the CPU of the database's backends from /proc (PostgreSQL must run on
this machine). Alternates two modes in each round, "shipped" (the code as it is) and the one named by --against
(MODE):
- "rollback-reads" (the default): read-only units of work end with ROLLBACK, as before the fix (psycopg then
  drops every prepared statement of the connection, so statements are parsed and planned again), and the
  next-task lookup rolls back too;
- "eager-begin": writing units of work begin their transaction before their first statement, as psycopg does by
  itself (a round trip of its own for BEGIN), instead of at their first write (bpm.adapters.unit_of_work
  .session_factory);
- "orm-loads": the completion's load, the start's definition and the projection's existing rows read through
  `Session.execute` and the ORM's loading, as before bpm.adapters.loaded_rows (the same SQL);
- "fresh-connections": each writing unit of work's session takes a new connection from the engine and closes it at
  the end, as before the nineteenth round, instead of taking the one the previous unit of work kept
  (bpm.adapters.kept_connections);
- "trail-apart" (with `--decide approve`): an approve reads the instance's approval records with a query of its
  own after its load, a round trip more, as before the seventeenth round (bpm.services.approvals.decide).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

from _common import backend_cpu_seconds, private_database, seed
from engine_vs_server import STEPS_PER_INSTANCE, ServiceLayer, fresh_connection_sessions
from sqlalchemy import text

from bpm.adapters import unit_of_work


@contextmanager
def rollback_reads(layer: ServiceLayer):
    """The code before the fix: read-only transactions and the lookup end with ROLLBACK."""
    saved_check, saved_lookup = unit_of_work._read_only, layer.open_task

    def lookup(instance_id: str) -> str:
        with layer.context.engine.connect() as connection:
            return connection.execute(text("SELECT id FROM tasks WHERE instance_id = :i AND status = 'open'"),
                                      {"i": instance_id}).scalar_one()

    unit_of_work._read_only = lambda session: False
    layer.open_task = lookup
    try:
        yield
    finally:
        unit_of_work._read_only, layer.open_task = saved_check, saved_lookup


@contextmanager
def writing_sessions(layer: ServiceLayer, factory):
    """The layer's writing units of work take their sessions from `factory` meanwhile."""
    saved = layer.context.sessions
    layer.context.sessions = factory
    try:
        yield
    finally:
        layer.context.sessions = saved


def eager_begin(layer: ServiceLayer):
    """The code before the lazy BEGIN: writing sessions on a transactional driver connection."""
    from sqlalchemy.orm import sessionmaker

    return writing_sessions(layer, sessionmaker(bind=layer.context.engine, expire_on_commit=False, autoflush=False))


def fresh_connections(layer: ServiceLayer):
    """The code before kept connections: each writing unit of work takes a new connection from the pool."""
    return writing_sessions(layer, fresh_connection_sessions(layer.context.engine))


@contextmanager
def orm_loads(layer: ServiceLayer):
    """The reads before bpm.adapters.loaded_rows: the same statements with ORM entities, through the session."""
    import functools

    from sqlalchemy import bindparam, exists, select

    from bpm.adapters.orm import ProcessDefinition, ProcessInstance, Task
    from bpm.adapters.orm_approvals import TaskSigner
    from bpm.domain.errors import InvalidTransition, NotFound
    from bpm.services import definitions, instances, projection, tasks, webhooks

    @functools.cache
    def completion_query():
        pending = exists().where(TaskSigner.task_id == Task.id, TaskSigner.status == "pending")
        return (select(Task, ProcessInstance, ProcessDefinition, pending.label("signers_pending"),
                       webhooks.any_active_column(), *projection.existing_summary_columns(Task))
                .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
                .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                .options(*definitions.WITHOUT_TEXTS).where(Task.id == bindparam("task_id")))

    def load_for_completion(uow, task_id):
        row = uow.session.execute(completion_query(), {"task_id": task_id}).first()
        if row is None:
            raise NotFound(f"task '{task_id}' not found")
        webhooks.note_any_active(uow, row.webhooks_active)
        task = row[0]
        if task.status != "open":
            raise InvalidTransition(f"the task is {task.status}", task_status=task.status)
        return task, row[1], row[2], bool(row[3]), projection.known_existing(row, task.id)

    def definition_to_start(uow, cmd):
        query = definitions.definition_query(cmd.version is not None, texts=False).add_columns(
            webhooks.any_active_column())
        row = uow.session.execute(query, definitions.definition_parameters(cmd.process_key, cmd.version)).first()
        definition = definitions.definition_found(row[0] if row else None, cmd.process_key, cmd.version)
        webhooks.note_any_active(uow, row.webhooks_active)
        return definition

    def existing_rows(uow, instance_id):
        return projection.existing_from(uow.session.execute(projection._existing_query(),
                                                            {"instance_id": instance_id}))

    saved = tasks.load_for_completion, instances._definition_to_start, projection._existing_rows
    tasks.load_for_completion, instances._definition_to_start, projection._existing_rows = (
        load_for_completion, definition_to_start, existing_rows)
    try:
        yield
    finally:
        tasks.load_for_completion, instances._definition_to_start, projection._existing_rows = saved


@contextmanager
def trail_apart(_layer: ServiceLayer):
    """The approve before the seventeenth round: the load without the trail, then the trail's own query."""
    from bpm.services import approvals, tasks

    def decide(cmd, uow):
        with uow:
            task, _instance, _definition, signers_pending, existing = tasks.load_for_completion(uow, cmd.task_id)
            signer = approvals._active_signer_row(uow, task, cmd.actor.username) if signers_pending else None
            if signer is not None:
                approvals._signer_decides(uow, task, signer, cmd)
            else:
                approvals._assignee_decides(uow, task, cmd, signers_pending, existing, trail=None)
            uow.commit()
            return task

    saved, approvals.decide = approvals.decide, decide
    try:
        yield
    finally:
        approvals.decide = saved


BEFORE = {"rollback-reads": rollback_reads, "eager-begin": eager_begin, "orm-loads": orm_loads,
          "trail-apart": trail_apart, "fresh-connections": fresh_connections}


def measure(layer: ServiceLayer, url: str, database: str, instances: int) -> tuple[float, float, float, float]:
    """(wall ms, client CPU ms, backend CPU ms, client CPU ms in the service calls) per step: the first two with
    the next-task lookups included, the backends' without the lookups' own pool (in rollback-reads the lookups run
    on the service's engine, as before the fix, and count), the last without the lookups."""
    exclude = layer.lookup_backends
    backend, cpu, wall = backend_cpu_seconds(url, database, exclude), time.process_time(), time.perf_counter()
    in_calls = sum(call_cpu for _, call_cpu in (layer.timed_instance() for _ in range(instances)))
    steps = instances * STEPS_PER_INSTANCE
    return ((time.perf_counter() - wall) * 1000 / steps, (time.process_time() - cpu) * 1000 / steps,
            (backend_cpu_seconds(url, database, exclude) - backend) * 1000 / steps, in_calls * 1000 / steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", choices=sorted(BEFORE), default="rollback-reads")
    parser.add_argument("--decide", choices=["complete", "approve"], default="complete")
    args = parser.parse_args()
    if args.against == "trail-apart" and args.decide != "approve":
        parser.error("--against trail-apart compares approves: add --decide approve")
    with private_database("bench_service_cpu") as (url, database):
        seed(url)
        layer = ServiceLayer(url, args.decide)
        for _ in range(20):
            layer.run_instance()
        results: dict[str, list[tuple[float, float, float]]] = {args.against: [], "shipped": []}
        for round_number in range(args.rounds):
            order = [args.against, "shipped"] if round_number % 2 == 0 else ["shipped", args.against]
            for mode in order:
                if mode == "shipped":
                    results[mode].append(measure(layer, url, database, args.instances))
                else:
                    with BEFORE[mode](layer):
                        results[mode].append(measure(layer, url, database, args.instances))
        layer.context.engine.dispose()
    print(f"{args.rounds} rounds x {args.instances} instances per mode; medians per step (the next-task lookups "
          "included, but in the calls' CPU and, outside rollback-reads, in the backends' CPU):")
    for mode, rows in results.items():
        wall, cpu, backend, in_calls = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"  {mode:15s} wall {wall:6.2f} ms   client CPU {cpu:5.2f} ms   "
              f"PostgreSQL backends CPU {backend:5.2f} ms   client CPU in the service calls {in_calls:5.2f} ms")
    pairs = list(zip(results["shipped"], results[args.against], strict=True))
    wall, cpu, backend, in_calls = (_median_ratio([(shipped[column], before[column]) for shipped, before in pairs])
                                    for column in range(4))
    print(f"shipped / {args.against}, median of the rounds' ratios: wall {wall}, client CPU {cpu}, "
          f"PostgreSQL backends CPU {backend}, client CPU in the service calls {in_calls}")


def _median_ratio(pairs: list[tuple[float, float]]) -> str:
    """The median of new/old over the rounds whose old figure is above zero (/proc counts CPU in ticks of 10 ms,
    so a short round can read zero), or "n/a" when none is."""
    ratios = [new / old for new, old in pairs if old > 0]
    return f"{statistics.median(ratios):.3f}" if ratios else "n/a"


if __name__ == "__main__":
    main()
