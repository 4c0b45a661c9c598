"""Engine floor vs server, in one run: the 3-approval process (start + 3 completions = 4 steps per instance).

    .venv/bin/python benchmarks/engine_vs_server.py [--rounds 5] [--instances 100] [--http-seconds 8]

Each round measures, one after the other (so machine noise hits all of them alike):
  (a)  pure SpiffWorkflow, every step as load JSON -> apply -> serialize with the full JSON (spec included),
       the default CamundaParser/serializer and the default script engine: the floor;
  (a2) the same steps through bpm.engine: restore instance-only JSON with the cached per-version spec,
       complete, snapshot (serialize + open tasks + timers + waiting messages): the engine part of a command;
  (b)  the service layer on PostgreSQL: start_instance + 3 x complete_task, each its own UnitOfWork and
       transaction, with handlers, history and projection (the next task id is looked up outside the timing);
  (b0) the same with the main service-layer optimisations of BENCHMARKS.md switched off in-process (class
       Baseline: which ones, there);
  (b1) the same with only the latest rounds' service-layer changes switched off (engine changes stay on);
  (c)  the same over HTTP through the shipped server (`bpm serve --workers 2`: granian, with a broker URL, so no
       embedded threads),
       4 client threads in a separate process; each client finds its next task through the approver's inbox
       (GET /tasks?business_key=...), so (c) includes 2 inbox reads per instance.
Reports steps/s (median of the rounds) and the cost ratios time-per-step (b)/(a) and (c)/(a), of the medians and
as the median of each round's own ratio (steadier when the machine's speed drifts during the run); the CPU per
step of (a) and of (b) (this process's inside the service calls plus PostgreSQL's backends', read from /proc, so
PostgreSQL must run on this machine) and their ratio round by round: what a step costs the cores, without the
waits that wall time counts; plus the stored instance row size after each step. Creates and drops its own
database; stops the server it started.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from dataclasses import dataclass, field

from _common import (
    BROKER_URL,
    THREE_APPROVALS,
    backend_cpu_seconds,
    generate_load,
    private_database,
    scratch_dir,
    seed,
    start_api,
    token_of,
)
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import event, text

from bpm import engine
from bpm.adapters.db import pooled_reads_engine
from bpm.config import Settings

STEPS_PER_INSTANCE = 4
LOOKUP = "SELECT id FROM tasks WHERE instance_id"  # the benchmark's own next-task lookup, not the server's
START_VARIABLES = {"amount": 5000}  # over 1,000: A -> gateway -> B -> C
DECISION = {"approved": True}


# --- (a) pure SpiffWorkflow ---------------------------------------------------------------------------------------


class PureEngine:
    def __init__(self, xml: bytes):
        # The default script engine evaluates Python: the one Camunda condition is written in Python here.
        python_xml = xml.replace(b"${amount &gt; 1000}", b"amount &gt; 1000")
        parser = CamundaParser()
        parser.add_bpmn_str(python_xml, filename="three_approvals.bpmn")
        self.spec = parser.get_spec("three_approvals")
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))

    def run_instance(self) -> list[int]:
        workflow = BpmnWorkflow(self.spec)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(START_VARIABLES)
        workflow.do_engine_steps()
        state = self.serializer.serialize_json(workflow)
        sizes = [len(state)]
        for _ in range(3):
            workflow = self.serializer.deserialize_json(state)
            task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
            task.data.update(DECISION)
            task.run()
            workflow.do_engine_steps()
            state = self.serializer.serialize_json(workflow)
            sizes.append(len(state))
        assert workflow.is_completed()
        return sizes


# --- (a2) bpm.engine with instance-only JSON ----------------------------------------------------------------------


class ServerEngine:
    def __init__(self, spec_json: str):
        self.runtime = engine.ProcessRuntime(spec_json)

    def run_instance(self) -> list[int]:
        workflow = self.runtime.new_workflow()
        engine.start(workflow, START_VARIABLES)
        snap = engine.snapshot(workflow)
        sizes = [len(snap.state_json)]
        for _ in range(3):
            workflow = self.runtime.restore(snap.state_json)
            engine.complete(workflow, snap.open_tasks[0].id, DECISION)
            snap = engine.snapshot(workflow)
            sizes.append(len(snap.state_json))
        assert snap.completed
        return sizes


# --- (b) service layer on PostgreSQL ------------------------------------------------------------------------------


class ServiceLayer:
    def __init__(self, url: str, decision: str = "complete"):
        """`decision`: how each approver decides, "complete" (the generic task API) or "approve" (the approvers'
        operation, bpm.services.approvals.decide)."""
        from api.context import ServerContext
        from bpm.services import identity

        self.decision = decision
        self.context = ServerContext.build(Settings(database_url=url, broker_url=BROKER_URL))
        # the project's own autocommit pool beside an engine, disposed with it; its backends' CPU is the
        # benchmark's, not the service's (time_service leaves it out)
        self.lookups = pooled_reads_engine(self.context.engine, url)
        self.lookup_backends: set[int] = set()
        event.listen(self.lookups, "connect",
                     lambda dbapi_connection, _record: self.lookup_backends.add(dbapi_connection.info.backend_pid))
        self.actors = {name: identity.authenticate(token_of(name), self.context.uow())
                       for name in ("ivan", "alice", "bob", "carol")}

    def open_task(self, instance_id: str) -> str:
        # On a pool of its own in autocommit: one round trip, no BEGIN or COMMIT for the database's CPU that
        # the (b) rows measure, and the service's connections and their prepared statements left alone.
        with self.lookups.connect() as connection:
            return connection.execute(text(f"{LOOKUP} = :i AND status = 'open'"),
                                      {"i": instance_id}).scalar_one()

    def run_instance(self) -> float:
        """Seconds spent inside the four service calls (lookups of the next task id excluded)."""
        return self.timed_instance()[0]

    def timed_instance(self, before_call=None) -> tuple[float, float]:
        """(wall, CPU) seconds spent inside the four service calls of one instance (lookups of the next task id
        excluded); `before_call`, if given, is called before each of them (start, then each completion)."""
        from bpm.services import approvals, instances, tasks

        spent = [0.0, 0.0]

        def call(service, command):
            if before_call is not None:
                before_call()
            began, began_cpu = time.perf_counter(), time.process_time()
            result = service(command, self.context.uow())
            spent[0] += time.perf_counter() - began
            spent[1] += time.process_time() - began_cpu
            return result

        started = call(instances.start_instance, instances.StartInstance(
            "three_approvals", self.actors["ivan"], uuid.uuid4().hex, dict(START_VARIABLES)))
        for approver in ("alice", "bob", "carol"):
            task_id = self.open_task(started.instance.id)
            if self.decision == "approve":
                call(approvals.decide, approvals.Decide(task_id, self.actors[approver], approvals.APPROVED, "ok"))
            else:
                call(tasks.complete_task, tasks.CompleteTask(task_id, self.actors[approver], dict(DECISION)))
        return spent[0], spent[1]

    def statements_per_instance(self) -> int:
        """SQL statements the four service calls send (BEGIN/COMMIT not included), counted on one instance at the
        driver (some are sent on psycopg directly, see bpm.adapters.hot_rows)."""
        from _common import driver_statements

        with driver_statements(self.context.engine) as statements:
            self.run_instance()
        return len([sql for sql, *_ in statements if not sql.startswith(LOOKUP)])

    def row_sizes(self) -> tuple[float, int]:
        with self.context.engine.connect() as connection:
            row = connection.execute(text("SELECT avg(octet_length(state_json::text)), "
                                          "max(octet_length(state_json::text)) FROM process_instances")).one()
        return float(row[0] or 0), int(row[1] or 0)


class Baseline:
    """Switches service-layer optimisations off in-process, to measure the code as it was before them.

    level "previous" (row b1): the latest rounds' service-layer changes off. The nineteenth round's: each writing
    unit of work takes a new connection from the pool and gives it back (`fresh_connection_sessions`), instead of
    the one the previous unit of work kept. The thirteenth round's: a new task's
    in-app rows and outbox messages are written by a statement of their own, not with the command's other writes
    (that is, by the sixth round's two statements below). The eleventh round's: the command's
    instances, tasks, approval records, history rows and recipients statement go through SQLAlchemy (the ORM's
    flush, Core) instead of psycopg directly (bpm.adapters.hot_rows). The sixth round's: a new task's recipients are
    read, then their in-app rows inserted (two statements, not one); the webhook subscriptions are read by every
    command (not skipped when the command's first query says none is active); a completion always reads the
    projection's existing rows (not skipped when its load says the task is all there is); every checkout pings
    the database (pool_pre_ping), not only one idle for more than 0.5 s. Level "original" (row b0): also the
    earlier rounds off: history rows are ORM objects flushed with the command (INSERT ... RETURNING id) instead
    of appended rows written with one INSERT, the webhook subscriptions are ORM objects, the task/instance/
    definition/signers and the projection's existing rows are read one query each, and new task rows are read
    back. Smaller changes (statements built once, the engine's flat rounds, no flush in the TaskCreated
    handler) stay on in every row, as does the engine.
    """

    def __init__(self, level: str = "original", layer: ServiceLayer | None = None):
        from bpm.adapters import unit_of_work
        from bpm.adapters.unit_of_work import UnitOfWork
        from bpm.services import notifications, projection, tasks, webhooks

        self.level, self.layer = level, layer
        self.engine = layer.context.engine if layer is not None else None
        self.saved_driver = (unit_of_work.queue_hot_rows, unit_of_work.insert_rows)
        self.saved = (projection._null_unset_columns, projection._keep_in_session, webhooks._active_subscriptions,
                      tasks.load_for_completion, projection._existing_rows, UnitOfWork.append_row,
                      webhooks.note_any_active, notifications.notify_named, projection.known_existing)

    def __enter__(self):
        from sqlalchemy import event, select

        from bpm.adapters import unit_of_work
        from bpm.adapters.orm import HistoryEntry
        from bpm.adapters.orm_integrations import WebhookSubscription
        from bpm.adapters.unit_of_work import UnitOfWork
        from bpm.services import notifications, projection, tasks, webhooks

        unit_of_work.queue_hot_rows = lambda session: None
        unit_of_work.insert_rows = lambda session, table, rows: False
        webhooks.note_any_active = lambda uow, any_active: None
        projection.known_existing = lambda row, open_task_id: None
        notifications.notify_named = lambda uow, reason, facts, users, groups: notifications.notify(
            uow, reason, facts, notifications.resolve_recipients(uow, users, groups))
        if self.layer is not None:
            self.saved_sessions = self.layer.context.sessions
            self.layer.context.sessions = fresh_connection_sessions(self.engine)
            event.listen(self.engine, "checkout", self._ping)
        if self.level == "original":
            UnitOfWork.append_row = lambda uow, _table, values: uow.session.add(HistoryEntry(**values))
            webhooks._active_subscriptions = lambda uow: list(uow.session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.active.is_(True))))
            tasks.load_for_completion = _load_one_by_one
            projection._existing_rows = _existing_rows_one_by_one
            projection._null_unset_columns = lambda row: None
            projection._keep_in_session = lambda uow, row: None
        return self

    def _ping(self, dbapi_connection, _record, _proxy) -> None:
        self.engine.dialect.do_ping(dbapi_connection)  # what pool_pre_ping does on every checkout

    def __exit__(self, *exc):
        from sqlalchemy import event

        from bpm.adapters import unit_of_work
        from bpm.adapters.unit_of_work import UnitOfWork
        from bpm.services import notifications, projection, tasks, webhooks

        if self.layer is not None:
            event.remove(self.engine, "checkout", self._ping)
            self.layer.context.sessions = self.saved_sessions
        unit_of_work.queue_hot_rows, unit_of_work.insert_rows = self.saved_driver
        (projection._null_unset_columns, projection._keep_in_session, webhooks._active_subscriptions,
         tasks.load_for_completion, projection._existing_rows, UnitOfWork.append_row,
         webhooks.note_any_active, notifications.notify_named, projection.known_existing) = self.saved


def fresh_connection_sessions(engine):
    """The writing sessions before the nineteenth round: bound to the engine (lazy BEGIN, autocommit driver), each
    taking a new connection from the pool and giving it back at its end, none kept (bpm.adapters.kept_connections)."""
    from sqlalchemy.orm import sessionmaker

    from bpm.adapters.unit_of_work import WRITING_OPTIONS

    return sessionmaker(bind=engine.execution_options(**WRITING_OPTIONS), expire_on_commit=False, autoflush=False)


def _load_one_by_one(uow, task_id: str):
    """Before issue 7: the task, the pending signers, the instance and the definition, one query each."""
    from sqlalchemy import select

    from bpm.adapters.orm import ProcessDefinition
    from bpm.adapters.orm_approvals import TaskSigner
    from bpm.services import tasks
    from bpm.services.instances import get_instance

    task = tasks._open_task(uow, task_id)
    pending = uow.session.scalar(select(TaskSigner.id).where(TaskSigner.task_id == task.id,
                                                             TaskSigner.status == "pending")) is not None
    instance = get_instance(uow, task.instance_id)
    return task, instance, uow.session.get(ProcessDefinition, instance.definition_id), pending, None


def _existing_rows_one_by_one(uow, instance_id: str):
    """Before issue 7: open tasks, waiting timers and message subscriptions as three ORM queries."""
    from sqlalchemy import select

    from bpm.adapters.orm import Task, Timer
    from bpm.adapters.orm_integrations import MessageSubscription
    from bpm.services import projection

    existing = projection._Existing()
    existing.task_ids = [t.id for t in uow.session.scalars(
        select(Task).where(Task.instance_id == instance_id, Task.status == "open"))]
    existing.timers = {t.task_id: (t.id, t.due_at) for t in uow.session.scalars(
        select(Timer).where(Timer.instance_id == instance_id, Timer.status == "waiting"))}
    existing.messages = {(r.message_name, r.element_id) for r in uow.session.scalars(
        select(MessageSubscription).where(MessageSubscription.instance_id == instance_id))}
    return existing


def time_engine(runner, instances: int, cpu: list[float] | None = None) -> float:
    """Steps/s; appends this process's CPU ms per step to `cpu` when given."""
    began, cpu_before = time.perf_counter(), time.process_time()
    for _ in range(instances):
        runner.run_instance()
    if cpu is not None:
        cpu.append((time.process_time() - cpu_before) * 1000 / (instances * STEPS_PER_INSTANCE))
    return instances * STEPS_PER_INSTANCE / (time.perf_counter() - began)


def time_service(layer: ServiceLayer, instances: int, cpu: list[float], cost: Cost | None = None) -> float:
    """Steps/s inside the service calls; appends this process's CPU ms per step (PostgreSQL's CPU excluded, the
    next-task lookups included). With `cost`, also appends the CPU per step inside the service calls and the
    database backends' CPU per step (the backend of the lookups' own pool left out)."""
    steps = instances * STEPS_PER_INSTANCE
    cpu_before = time.process_time()
    backend_before = backend_cpu_seconds(*cost.database, layer.lookup_backends) if cost is not None else 0.0
    spent = [layer.timed_instance() for _ in range(instances)]
    cpu.append((time.process_time() - cpu_before) * 1000 / steps)
    if cost is not None:
        cost.client.append(sum(call_cpu for _, call_cpu in spent) * 1000 / steps)
        cost.database_cpu.append((backend_cpu_seconds(*cost.database, layer.lookup_backends) - backend_before)
                                 * 1000 / steps)
    return steps / sum(wall for wall, _ in spent)


@dataclass
class Cost:
    """CPU per step, round by round: (a)'s, and (b)'s in the service calls and in PostgreSQL's backends."""

    database: tuple[str, str]  # (url, name) of the benchmark's database
    engine: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    database_cpu: list[float] = field(default_factory=list)

    def report(self) -> None:
        """(b)/(a) by CPU: what a step costs the machine, client and database, against what the engine alone
        costs. It leaves out the waits (round trips, the commit's flush to disk) that wall time counts, and it
        is what decides how many steps the machine's cores can run."""
        ratios = [(client + database) / engine
                  for engine, client, database in zip(self.engine, self.client, self.database_cpu, strict=True)]
        median = statistics.median
        print(f"CPU per step (median): (a) {median(self.engine):.2f} ms; (b) {median(self.client):.2f} ms in the "
              f"service calls + {median(self.database_cpu):.2f} ms in PostgreSQL's backends")
        print("CPU per step (b)/(a), per round: " + ", ".join(f"{r:.2f}" for r in ratios)
              + f"; median {median(ratios):.2f}; PostgreSQL's part alone against (a): "
              + f"{median(d / e for d, e in zip(self.database_cpu, self.engine, strict=True)):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instances", type=int, default=100, help="instances per round for a, a2, b0, b1, b")
    parser.add_argument("--http-seconds", type=float, default=8.0, help="0: skip (c), no server is started")
    parser.add_argument("--http-clients", type=int, default=4)
    parser.add_argument("--api-workers", type=int, default=2)
    args = parser.parse_args()

    _xml, compiled = engine.compile_bpmn(THREE_APPROVALS.read_bytes())
    pure, ours = PureEngine(THREE_APPROVALS.read_bytes()), ServerEngine(compiled[0].spec_json)
    pure_sizes, ours_sizes = pure.run_instance(), ours.run_instance()
    logs = scratch_dir()
    with private_database("bench_floor") as (url, name):
        seed(url)
        layer = ServiceLayer(url)
        variants = {"b0": lambda: Baseline("original", layer), "b1": lambda: Baseline("previous", layer),
                    "b": contextlib.nullcontext}
        layer.run_instance()  # warm the spec cache and the connection pool
        server = start_api(url, args.api_workers, logs) if args.http_seconds > 0 else None
        try:
            if server is not None:
                generate_load([server.port], 2, 2.0)  # warm-up: imports, pools, caches in every worker
            results: dict[str, list[float]] = {"a": [], "a2": [], **{k: [] for k in variants}}
            if server is not None:
                results["c"] = []
            cpu: dict[str, list[float]] = {k: [] for k in variants}
            cost = Cost((url, name))
            statements = {}
            for key, variant in variants.items():
                with variant():
                    statements[key] = layer.statements_per_instance()
            for round_number in range(args.rounds):
                results["a"].append(time_engine(pure, args.instances, cost.engine))
                results["a2"].append(time_engine(ours, args.instances))
                for key, variant in variants.items():
                    with variant():
                        results[key].append(time_service(layer, args.instances, cpu[key],
                                                         cost if key == "b" else None))
                if server is not None:
                    load = generate_load([server.port], args.http_clients, args.http_seconds)
                    if load.errors:
                        print("HTTP errors:", len(load.errors), load.errors[:3])
                    results["c"].append(load.completed * STEPS_PER_INSTANCE / load.seconds)
                print(f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.0f} steps/s" for k, v in results.items()),
                      flush=True)
            report(results, pure_sizes, ours_sizes, layer.row_sizes(), args)
            print("SQL statements per instance (start + 3 completions): "
                  + ", ".join(f"({k}) {n}" for k, n in statements.items()))
            print("client-process CPU per step (median; the ORM and the engine, PostgreSQL excluded): "
                  + ", ".join(f"({k}) {statistics.median(v):.2f} ms" for k, v in cpu.items()))
            for key in variants:
                ratios = [b / o for b, o in zip(results["b"], results[key], strict=True)]
                if key != "b":
                    print(f"speed-up of (b) over ({key}), per round: " + ", ".join(f"{r:.2f}" for r in ratios)
                          + f"; median {statistics.median(ratios):.2f}")
            # The machine's speed drifts within a run: each round's own ratio, (a) and (b) timed back to back,
            # is steadier than the ratio of the medians in the table.
            for key in ("a2", "b", "c"):
                if results.get(key):
                    ratios = [a / other for a, other in zip(results["a"], results[key], strict=True)]
                    print(f"time per step ({key})/(a), per round: " + ", ".join(f"{r:.2f}" for r in ratios)
                          + f"; median {statistics.median(ratios):.2f}")
            cost.report()
        finally:
            if server is not None:
                server.stop()
            layer.context.engine.dispose()


def report(results, pure_sizes, ours_sizes, row_sizes, args) -> None:
    median = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"rounds: {args.rounds}; {args.instances} instances per round for a/a2/b0/b1/b; "
          f"HTTP: {args.http_clients} clients x {args.http_seconds:.0f} s against {args.api_workers} HTTP workers")
    print("| path | steps/s (median) | ms per step | time per step vs (a) |")
    print("|---|---|---|---|")
    labels = {"a": "(a) pure SpiffWorkflow, full JSON", "a2": "(a2) bpm.engine, instance-only JSON",
              "b0": "(b0) service layer, main optimisations off",
              "b1": "(b1) service layer, latest rounds off", "b": "(b) service layer + PostgreSQL",
              "c": f"(c) HTTP, bpm serve, {args.http_clients} clients"}
    for key, label in labels.items():
        if key in median:
            print(f"| {label} | {median[key]:.0f} | {1000 / median[key]:.2f} | {median['a'] / median[key]:.2f} |")
    print()
    print("state JSON bytes after start, A, B, C:")
    print(f"  (a)  full JSON with spec: {pure_sizes}")
    print(f"  (a2) instance-only JSON:  {ours_sizes}")
    print(f"  (b)  process_instances.state_json: average {row_sizes[0]:.0f}, max {row_sizes[1]}")


if __name__ == "__main__":
    main()
