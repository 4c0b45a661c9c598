"""Engine floor vs server, in one run: the 3-approval process (start + 3 completions = 4 steps per instance).

    .venv/bin/python benchmarks/engine_vs_server.py [--rounds 5] [--instances 100] [--http-seconds 8]

Each round measures, one after the other (so machine noise hits all of them alike):
  (a)  pure SpiffWorkflow, every step as load JSON -> apply -> serialize with the full JSON (spec included),
       the default CamundaParser/serializer and the default script engine: the floor;
  (a2) the same steps through bpm.engine: restore instance-only JSON with the cached per-version spec,
       complete, snapshot (serialize + open tasks + timers + waiting messages): the engine part of a command;
  (b)  the service layer on PostgreSQL: start_instance + 3 x complete_task, each its own UnitOfWork and
       transaction, with handlers, history and projection (the next task id is looked up outside the timing);
  (b0) the same with the optimisations of BENCHMARKS.md switched off in-process (class Baseline): before/after;
  (c)  the same over HTTP through gunicorn (`bpm serve --workers 2` with a broker URL, so no embedded threads),
       4 client threads in a separate process; each client finds its next task through the approver's inbox
       (GET /tasks?business_key=...), so (c) includes 2 inbox reads per instance.
Reports steps/s (median of the rounds) and the cost ratios time-per-step (b)/(a) and (c)/(a); plus the stored
instance row size after each step. Creates and drops its own database; stops the server it started.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from _common import (
    BROKER_URL,
    THREE_APPROVALS,
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
from sqlalchemy import text

from bpm import engine
from bpm.config import Settings

STEPS_PER_INSTANCE = 4
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
    def __init__(self, url: str):
        from api.context import ServerContext
        from bpm.services import identity

        self.context = ServerContext.build(Settings(database_url=url, broker_url=BROKER_URL))
        self.actors = {name: identity.authenticate(token_of(name), self.context.uow())
                       for name in ("ivan", "alice", "bob", "carol")}

    def open_task(self, instance_id: str) -> str:
        with self.context.engine.connect() as connection:
            return connection.execute(text("SELECT id FROM tasks WHERE instance_id = :i AND status = 'open'"),
                                      {"i": instance_id}).scalar_one()

    def run_instance(self) -> float:
        """Seconds spent inside the four service calls (lookups of the next task id excluded)."""
        from bpm.services import instances, tasks

        began = time.perf_counter()
        result = instances.start_instance(instances.StartInstance(
            "three_approvals", self.actors["ivan"], uuid.uuid4().hex, dict(START_VARIABLES)), self.context.uow())
        spent = time.perf_counter() - began
        for approver in ("alice", "bob", "carol"):
            task_id = self.open_task(result.instance.id)
            began = time.perf_counter()
            tasks.complete_task(tasks.CompleteTask(task_id, self.actors[approver], dict(DECISION)),
                                self.context.uow())
            spent += time.perf_counter() - began
        return spent

    def statements_per_instance(self) -> int:
        """SQL statements the four service calls send (BEGIN/COMMIT not included), counted on one instance."""
        from sqlalchemy import event

        statements: list[str] = []

        def count(_conn, _cursor, statement, *_rest):
            statements.append(statement)

        event.listen(self.context.engine, "before_cursor_execute", count)
        try:
            self.run_instance()
        finally:
            event.remove(self.context.engine, "before_cursor_execute", count)
        return len([s for s in statements if not s.startswith("SELECT id FROM tasks WHERE instance_id")])

    def row_sizes(self) -> tuple[float, int]:
        with self.context.engine.connect() as connection:
            row = connection.execute(text("SELECT avg(octet_length(state_json::text)), "
                                          "max(octet_length(state_json::text)) FROM process_instances")).one()
        return float(row[0] or 0), int(row[1] or 0)


class Baseline:
    """Switches off this benchmark's service-layer optimisations for the (b0) rows: the code as it was before."""

    def __init__(self):
        from bpm.services import projection, webhooks

        self.saved = (projection._null_unset_columns, projection._keep_in_session, webhooks._active_subscriptions)

    def __enter__(self):
        from sqlalchemy import select

        from bpm.adapters.orm_integrations import WebhookSubscription
        from bpm.services import projection, webhooks

        projection._null_unset_columns = lambda row: None
        projection._keep_in_session = lambda uow, row: None
        webhooks._active_subscriptions = lambda uow: list(uow.session.scalars(
            select(WebhookSubscription).where(WebhookSubscription.active.is_(True))))
        return self

    def __exit__(self, *exc):
        from bpm.services import projection, webhooks

        projection._null_unset_columns, projection._keep_in_session, webhooks._active_subscriptions = self.saved


def time_engine(runner, instances: int) -> float:
    began = time.perf_counter()
    for _ in range(instances):
        runner.run_instance()
    return instances * STEPS_PER_INSTANCE / (time.perf_counter() - began)


def time_service(layer: ServiceLayer, instances: int, cpu: list[float]) -> float:
    """Steps/s inside the service calls; appends this process's CPU ms per step (PostgreSQL's CPU excluded)."""
    cpu_before = time.process_time()
    spent = sum(layer.run_instance() for _ in range(instances))
    cpu.append((time.process_time() - cpu_before) * 1000 / (instances * STEPS_PER_INSTANCE))
    return instances * STEPS_PER_INSTANCE / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instances", type=int, default=100, help="instances per round for (a), (a2), (b0), (b)")
    parser.add_argument("--http-seconds", type=float, default=8.0)
    parser.add_argument("--http-clients", type=int, default=4)
    parser.add_argument("--api-workers", type=int, default=2)
    args = parser.parse_args()

    _xml, compiled = engine.compile_bpmn(THREE_APPROVALS.read_bytes())
    pure, ours = PureEngine(THREE_APPROVALS.read_bytes()), ServerEngine(compiled[0].spec_json)
    pure_sizes, ours_sizes = pure.run_instance(), ours.run_instance()
    logs = scratch_dir()
    with private_database("bench_floor") as (url, _name):
        seed(url)
        layer = ServiceLayer(url)
        layer.run_instance()  # warm the spec cache and the connection pool
        server = start_api(url, args.api_workers, logs)
        try:
            generate_load([server.port], 2, 2.0)  # warm-up: imports, pools, caches in every worker
            results: dict[str, list[float]] = {"a": [], "a2": [], "b0": [], "b": [], "c": []}
            cpu: list[float] = []
            cpu_before: list[float] = []
            statements = layer.statements_per_instance()
            with Baseline():
                statements_before = layer.statements_per_instance()
            for round_number in range(args.rounds):
                results["a"].append(time_engine(pure, args.instances))
                results["a2"].append(time_engine(ours, args.instances))
                with Baseline():
                    results["b0"].append(time_service(layer, args.instances, cpu_before))
                results["b"].append(time_service(layer, args.instances, cpu))
                load = generate_load([server.port], args.http_clients, args.http_seconds)
                if load.errors:
                    print("HTTP errors:", len(load.errors), load.errors[:3])
                results["c"].append(load.completed * STEPS_PER_INSTANCE / load.seconds)
                print(f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.0f} steps/s" for k, v in results.items()),
                      flush=True)
            report(results, pure_sizes, ours_sizes, layer.row_sizes(), args)
            print(f"SQL statements per instance (start + 3 completions): (b0) {statements_before}, (b) {statements}")
            print(f"client-process CPU per step (median; the ORM and the engine, PostgreSQL excluded): "
                  f"(b0) {statistics.median(cpu_before):.2f} ms, (b) {statistics.median(cpu):.2f} ms")
        finally:
            server.stop()
            layer.context.engine.dispose()


def report(results, pure_sizes, ours_sizes, row_sizes, args) -> None:
    median = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"rounds: {args.rounds}; {args.instances} instances per round for a/a2/b0/b; "
          f"HTTP: {args.http_clients} clients x {args.http_seconds:.0f} s against {args.api_workers} gunicorn workers")
    print("| path | steps/s (median) | ms per step | time per step vs (a) |")
    print("|---|---|---|---|")
    labels = {"a": "(a) pure SpiffWorkflow, full JSON", "a2": "(a2) bpm.engine, instance-only JSON",
              "b0": "(b0) service layer, before the optimisations", "b": "(b) service layer + PostgreSQL",
              "c": f"(c) HTTP, gunicorn, {args.http_clients} clients"}
    for key, label in labels.items():
        print(f"| {label} | {median[key]:.0f} | {1000 / median[key]:.2f} | {median['a'] / median[key]:.2f} |")
    print()
    print("state JSON bytes after start, A, B, C:")
    print(f"  (a)  full JSON with spec: {pure_sizes}")
    print(f"  (a2) instance-only JSON:  {ours_sizes}")
    print(f"  (b)  process_instances.state_json: average {row_sizes[0]:.0f}, max {row_sizes[1]}")


if __name__ == "__main__":
    main()
