"""Cost growth: does a step cost more when the instance has already completed many steps?

    .venv/bin/python benchmarks/cost_growth.py [--lengths 5,50,500] [--loop 500] [--parallel-loop 250]
                                               [--inclusive-loop 250] [--parallel 100] [--long-loop N]

Generates (into a scratch directory) sequential chains of 5, 50 and 500 user tasks (SpiffWorkflow's parser
recurses once per element of a chain: bpm.engine compiles, and runs the steps of large processes, on a thread
with a deep stack), a loop (one user task and an exclusive gateway looping back 500 times, the case where
completed tasks pile up in the instance), loops through a parallel and through an inclusive join (two user
tasks a pass, 250 passes) and one process with a 100-way parallel multi-instance user task,
deploys them, and for one instance of each measures every completion:
  engine:  CPU time of bpm.engine restore -> complete -> snapshot on the instance-only JSON (no database), for
           two instances moved in turns: one with the engine-side optimisations of issue 7 switched off
           in-process (EngineBaseline: every task query a SpiffWorkflow tree walk, no archive, SpiffWorkflow's
           full path prediction and its own parallel join) and one as shipped;
  service: tasks.complete_task on PostgreSQL (its own transaction; the next task id is looked up outside).
Reports per-step time at the start (first 10 % of the steps, at least the first 3) and at the end (last
10 %), their ratio, the instance row size (state_json bytes) at the end and the largest on the way, and the
instance's archive rows (finished tasks that left the state). Flat cost = ratio close to 1.
With --long-loop N, it then moves one instance of an N-step loop through the engine alone (as shipped, no
baseline instance beside it: the baseline's tree grows to hundreds of thousands of objects, and the garbage
collector's passes over them land in the other instance's steps too) and one through the service, and prints the
median per-step time of each tenth of the run: a cost that grows with the completed steps rises from tenth to
tenth, a flat one does not.
Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path

from _common import BROKER_URL, private_database, scratch_dir, seed, token_of
from sqlalchemy import text

from bpm import engine
from bpm.config import Settings

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
  id="defs_{key}" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="{key}" name="{key}" isExecutable="true">
"""


def _shape(element_id: str, x: int, y: int, w: int, h: int) -> str:
    return (f'<bpmndi:BPMNShape id="{element_id}_di" bpmnElement="{element_id}">'
            f'<dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}" /></bpmndi:BPMNShape>')


def _edge(flow_id: str, x1: int, x2: int) -> str:
    return (f'<bpmndi:BPMNEdge id="{flow_id}_di" bpmnElement="{flow_id}"><di:waypoint x="{x1}" y="200" />'
            f'<di:waypoint x="{x2}" y="200" /></bpmndi:BPMNEdge>')


def sequential_bpmn(steps: int) -> tuple[str, bytes]:
    """start -> step_1 -> ... -> step_N -> end, every step a user task for the team-leads group."""
    key = f"sequential_{steps}"
    ids = ["start", *[f"step_{i}" for i in range(1, steps + 1)], "end"]
    body, shapes, edges = [], [], []
    for index, element_id in enumerate(ids):
        incoming = f"<bpmn:incoming>f_{index - 1}</bpmn:incoming>" if index else ""
        outgoing = f"<bpmn:outgoing>f_{index}</bpmn:outgoing>" if index < len(ids) - 1 else ""
        if element_id == "start":
            body.append(f'<bpmn:startEvent id="start">{outgoing}</bpmn:startEvent>')
        elif element_id == "end":
            body.append(f'<bpmn:endEvent id="end">{incoming}</bpmn:endEvent>')
        else:
            body.append(f'<bpmn:userTask id="{element_id}" name="Step {index}" '
                        f'camunda:candidateGroups="team-leads">{incoming}{outgoing}</bpmn:userTask>')
        x = 150 + index * 150
        shapes.append(_shape(element_id, x, 160, 100, 80))
        if index < len(ids) - 1:
            body.append(f'<bpmn:sequenceFlow id="f_{index}" sourceRef="{element_id}" targetRef="{ids[index + 1]}" />')
            edges.append(_edge(f"f_{index}", x + 100, x + 150))
    return key, _document(key, body, shapes + edges)


def parallel_bpmn(count: int) -> tuple[str, bytes]:
    """start -> one user task with a `count`-way parallel multi-instance -> end."""
    key = f"parallel_{count}"
    body = [
        '<bpmn:startEvent id="start"><bpmn:outgoing>f_0</bpmn:outgoing></bpmn:startEvent>',
        '<bpmn:userTask id="review" name="Review" camunda:candidateGroups="team-leads">'
        '<bpmn:incoming>f_0</bpmn:incoming><bpmn:outgoing>f_1</bpmn:outgoing>'
        f'<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>{count}</bpmn:loopCardinality>'
        '</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>',
        '<bpmn:endEvent id="end"><bpmn:incoming>f_1</bpmn:incoming></bpmn:endEvent>',
        '<bpmn:sequenceFlow id="f_0" sourceRef="start" targetRef="review" />',
        '<bpmn:sequenceFlow id="f_1" sourceRef="review" targetRef="end" />',
    ]
    di = [_shape("start", 150, 182, 36, 36), _shape("review", 250, 160, 100, 80), _shape("end", 420, 182, 36, 36),
          _edge("f_0", 186, 250), _edge("f_1", 350, 420)]
    return key, _document(key, body, di)


def loop_bpmn(iterations: int) -> tuple[str, bytes]:
    """start -> work -> gateway (n < total: back to work) -> end: every iteration adds completed tasks to the tree."""
    key = f"loop_{iterations}"
    body = [
        '<bpmn:startEvent id="start"><bpmn:outgoing>f_0</bpmn:outgoing></bpmn:startEvent>',
        '<bpmn:userTask id="work" name="Work" camunda:candidateGroups="team-leads">'
        '<bpmn:incoming>f_0</bpmn:incoming><bpmn:incoming>f_again</bpmn:incoming>'
        '<bpmn:outgoing>f_1</bpmn:outgoing></bpmn:userTask>',
        '<bpmn:exclusiveGateway id="more" name="More?" default="f_done"><bpmn:incoming>f_1</bpmn:incoming>'
        '<bpmn:outgoing>f_again</bpmn:outgoing><bpmn:outgoing>f_done</bpmn:outgoing></bpmn:exclusiveGateway>',
        '<bpmn:endEvent id="end"><bpmn:incoming>f_done</bpmn:incoming></bpmn:endEvent>',
        '<bpmn:sequenceFlow id="f_0" sourceRef="start" targetRef="work" />',
        '<bpmn:sequenceFlow id="f_1" sourceRef="work" targetRef="more" />',
        '<bpmn:sequenceFlow id="f_again" sourceRef="more" targetRef="work">'
        '<bpmn:conditionExpression xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:type="bpmn:tFormalExpression">${n &lt; total}</bpmn:conditionExpression></bpmn:sequenceFlow>',
        '<bpmn:sequenceFlow id="f_done" sourceRef="more" targetRef="end" />',
    ]
    di = [_shape("start", 150, 182, 36, 36), _shape("work", 250, 160, 100, 80), _shape("more", 400, 175, 50, 50),
          _shape("end", 500, 182, 36, 36), _edge("f_0", 186, 250), _edge("f_1", 350, 400),
          _edge("f_again", 425, 300), _edge("f_done", 450, 500)]
    return key, _document(key, body, di)


def parallel_loop_bpmn(iterations: int, kind: str = "parallel") -> tuple[str, bytes]:
    """start -> split -> (a | b) -> join -> gateway (n < total: back to split) -> end: a loop through a parallel
    (or inclusive, both branches taken) join, two user tasks a pass."""
    key, gateway = f"{kind}_loop_{iterations}", f"{kind}Gateway"
    always = ""  # an inclusive gateway's branches need conditions: both hold
    if kind == "inclusive":
        always = ('<bpmn:conditionExpression xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                  'xsi:type="bpmn:tFormalExpression">${n &gt;= 0}</bpmn:conditionExpression>')
    user = ('<bpmn:userTask id="{id}" name="{id}" camunda:candidateGroups="team-leads"><bpmn:incoming>{into}'
            '</bpmn:incoming><bpmn:outgoing>{out}</bpmn:outgoing></bpmn:userTask>')
    body = [
        '<bpmn:startEvent id="start"><bpmn:outgoing>f_0</bpmn:outgoing></bpmn:startEvent>',
        f'<bpmn:{gateway} id="split"><bpmn:incoming>f_0</bpmn:incoming><bpmn:incoming>f_again</bpmn:incoming>'
        f'<bpmn:outgoing>f_a</bpmn:outgoing><bpmn:outgoing>f_b</bpmn:outgoing></bpmn:{gateway}>',
        user.format(id="a", into="f_a", out="f_a_join"), user.format(id="b", into="f_b", out="f_b_join"),
        f'<bpmn:{gateway} id="join"><bpmn:incoming>f_a_join</bpmn:incoming><bpmn:incoming>f_b_join'
        f'</bpmn:incoming><bpmn:outgoing>f_1</bpmn:outgoing></bpmn:{gateway}>',
        '<bpmn:exclusiveGateway id="more" name="More?" default="f_done"><bpmn:incoming>f_1</bpmn:incoming>'
        '<bpmn:outgoing>f_again</bpmn:outgoing><bpmn:outgoing>f_done</bpmn:outgoing></bpmn:exclusiveGateway>',
        '<bpmn:endEvent id="end"><bpmn:incoming>f_done</bpmn:incoming></bpmn:endEvent>',
        '<bpmn:sequenceFlow id="f_0" sourceRef="start" targetRef="split" />',
        f'<bpmn:sequenceFlow id="f_a" sourceRef="split" targetRef="a">{always}</bpmn:sequenceFlow>',
        f'<bpmn:sequenceFlow id="f_b" sourceRef="split" targetRef="b">{always}</bpmn:sequenceFlow>',
        '<bpmn:sequenceFlow id="f_a_join" sourceRef="a" targetRef="join" />',
        '<bpmn:sequenceFlow id="f_b_join" sourceRef="b" targetRef="join" />',
        '<bpmn:sequenceFlow id="f_1" sourceRef="join" targetRef="more" />',
        '<bpmn:sequenceFlow id="f_again" sourceRef="more" targetRef="split">'
        '<bpmn:conditionExpression xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:type="bpmn:tFormalExpression">${n &lt; total}</bpmn:conditionExpression></bpmn:sequenceFlow>',
        '<bpmn:sequenceFlow id="f_done" sourceRef="more" targetRef="end" />',
    ]
    di = [_shape("start", 150, 182, 36, 36), _shape("split", 230, 175, 50, 50), _shape("a", 320, 80, 100, 80),
          _shape("b", 320, 240, 100, 80), _shape("join", 470, 175, 50, 50), _shape("more", 560, 175, 50, 50),
          _shape("end", 660, 182, 36, 36), _edge("f_0", 186, 230), _edge("f_a", 280, 320), _edge("f_b", 280, 320),
          _edge("f_a_join", 420, 470), _edge("f_b_join", 420, 470), _edge("f_1", 520, 560),
          _edge("f_again", 585, 255), _edge("f_done", 610, 660)]
    return key, _document(key, body, di)


def _document(key: str, body: list[str], di: list[str]) -> bytes:
    return (HEADER.format(key=key) + "\n".join(body) + "\n  </bpmn:process>\n"
            f'  <bpmndi:BPMNDiagram id="diagram"><bpmndi:BPMNPlane id="plane" bpmnElement="{key}">'
            + "".join(di) + "</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>\n</bpmn:definitions>\n").encode()


# --- measuring ----------------------------------------------------------------------------------------------------


class EngineBaseline:
    """The engine as before issue 7: every task query and every engine round walks SpiffWorkflow's task tree,
    timers always refreshed, no archive, and (with `baseline_runtime`) SpiffWorkflow's full path prediction."""

    def __enter__(self):
        hooks = {gateway: (gateway._update_hook, gateway._run_hook) for gateway in engine.SPIFFWORKFLOW_JOIN_HOOKS}
        self.saved = (engine.tasks_in_state, engine._waits_for_timers, engine._engine_round, engine.ARCHIVE_BATCH,
                      hooks)
        engine.tasks_in_state = lambda workflow, state, manual=None: workflow.get_tasks(state=state, manual=manual)
        engine._waits_for_timers = lambda workflow: True
        engine._engine_round = lambda workflow: workflow._do_engine_steps()
        engine.ARCHIVE_BATCH = sys.maxsize
        _set_join_hooks(engine.SPIFFWORKFLOW_JOIN_HOOKS)  # SpiffWorkflow's joins: they check the whole tree
        return self

    def __exit__(self, *exc):
        engine.tasks_in_state, engine._waits_for_timers, engine._engine_round, engine.ARCHIVE_BATCH, hooks = self.saved
        _set_join_hooks(hooks)


def _set_join_hooks(hooks: dict) -> None:
    for gateway, (update_hook, run_hook) in hooks.items():
        gateway._update_hook, gateway._run_hook = update_hook, run_hook


def baseline_runtime(spec_json: str) -> engine.ProcessRuntime:
    """A runtime whose task specs predict the whole path, as SpiffWorkflow does on its own."""
    runtime = engine.ProcessRuntime(spec_json)
    for spec in [runtime.spec, *runtime.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            task_spec.__dict__.pop("bpm_predict_depth", None)
    return runtime


class EngineRun:
    """One instance moved through bpm.engine alone (restore -> complete -> snapshot), CPU time per step."""

    def __init__(self, runtime: engine.ProcessRuntime, total: int, baseline: bool):
        self.runtime, self.baseline, self.times = runtime, baseline, []
        self.failed_at: int | None = None  # the step at which the baseline failed (its run stops there)
        self.failure = ""
        with EngineBaseline() if baseline else contextlib.nullcontext():
            workflow = runtime.new_workflow()
            engine.start(workflow, {"total": total, "n": 0})
            self.snap = engine.snapshot(workflow)

    def step(self) -> None:
        number = len(self.times) + 1
        with EngineBaseline() if self.baseline else contextlib.nullcontext():
            began = time.process_time()
            moved = self.runtime.restore(self.snap.state_json)
            try:
                engine.complete(moved, self.snap.open_tasks[0].id, {"approved": True, "n": number})
            except Exception as error:  # noqa: BLE001 - SpiffWorkflow's own joins fail in long loops: reported
                if not self.baseline:
                    raise
                self.failed_at, self.failure, self.snap.open_tasks[:] = number, _failure(error), []
                return
            self.snap = engine.snapshot(moved)
            self.times.append(time.process_time() - began)


def _failure(error: Exception) -> str:
    cause = error.__cause__ if isinstance(error, engine.EngineError) and error.__cause__ else error
    return type(cause).__name__


def engine_steps(spec_json: str, total: int) -> tuple[EngineRun, EngineRun]:
    """CPU seconds per completion through bpm.engine alone, before (EngineBaseline, full prediction) and after:
    two instances of the process, moved step by step in turns, alternating which goes first. CPU time: the
    engine is pure computation, and CPU time is far less disturbed than wall time by other work on a shared
    machine."""
    before = EngineRun(baseline_runtime(spec_json), total, baseline=True)
    after = EngineRun(engine.ProcessRuntime(spec_json), total, baseline=False)
    while before.snap.open_tasks or after.snap.open_tasks:
        pair = [run for run in (before, after) if run.snap.open_tasks]
        for run in pair if len(after.times) % 2 else reversed(pair):
            run.step()
    return before, after


class Service:
    def __init__(self, url: str):
        from api.context import ServerContext
        from bpm.services import identity

        self.context = ServerContext.build(Settings(database_url=url, broker_url=BROKER_URL))
        self.starter = identity.authenticate(token_of("ivan"), self.context.uow())
        self.approver = identity.authenticate(token_of("alice"), self.context.uow())

    def sql(self, statement: str, **params):
        with self.context.engine.connect() as connection:
            return connection.execute(text(statement), params)

    def run(self, key: str, total: int) -> tuple[list[float], list[int]]:
        """Seconds per complete_task call and state_json bytes after each step."""
        from bpm.services import instances, tasks

        result = instances.start_instance(instances.StartInstance(key, self.starter, uuid.uuid4().hex,
                                                                  {"total": total, "n": 0}), self.context.uow())
        instance_id = result.instance.id
        times, sizes = [], []
        while True:
            task_id = self.sql("SELECT id FROM tasks WHERE instance_id = :i AND status = 'open' ORDER BY id LIMIT 1",
                               i=instance_id).scalar()
            if task_id is None:
                break
            began = time.perf_counter()
            tasks.complete_task(tasks.CompleteTask(task_id, self.approver, {"approved": True, "n": len(times) + 1}),
                                self.context.uow())
            times.append(time.perf_counter() - began)
            sizes.append(self.sql("SELECT octet_length(state_json) FROM process_instances WHERE id = :i",
                                  i=instance_id).scalar())
        self.archive_rows = self.sql("SELECT count(*) FROM instance_archive WHERE instance_id = :i",
                                     i=instance_id).scalar()
        return times, sizes


def by_tenths(key: str, path: Path, total: int, service: Service) -> None:
    """The long loop's per-step time by tenths of its run: the engine alone (CPU), then the service (wall)."""
    _xml, compiled = engine.compile_bpmn(path.read_bytes())
    alone = EngineRun(engine.ProcessRuntime(compiled[0].spec_json), total, baseline=False)
    while alone.snap.open_tasks:
        alone.step()
    service_times, sizes = service.run(key, total)
    print(f"\n{key}, median ms per step in each tenth of the run (no baseline instance beside it):")
    for label, times in (("engine alone, CPU", alone.times), ("service, wall", service_times)):
        print(f"  {label}: " + ", ".join(f"{median:.2f}" for median in tenths(times)))
    print(f"  state_json bytes at the end of each tenth: {', '.join(str(size) for size in tenths(sizes, last=True))}")


def tenths(values: list, last: bool = False) -> list:
    """The median of each tenth of `values` in ms (or, with `last`, each tenth's last value as it is)."""
    size = max(1, len(values) // 10)
    chunks = [values[start:start + size] for start in range(0, len(values), size)][:10]
    return [chunk[-1] for chunk in chunks] if last else [statistics.median(chunk) * 1000 for chunk in chunks]


def start_end(times: list[float]) -> tuple[float, float]:
    window = max(3, len(times) // 10)
    return (statistics.median(times[:window]) * 1000, statistics.median(times[-window:]) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="5,50,500", help="sequential chains of user tasks")
    parser.add_argument("--loop", type=int, default=500, help="iterations of the loop-back process")
    parser.add_argument("--parallel", type=int, default=100)
    parser.add_argument("--parallel-loop", type=int, default=250, help="passes of the loop through a parallel join")
    parser.add_argument("--inclusive-loop", type=int, default=250, help="passes of the loop through an inclusive join")
    parser.add_argument("--long-loop", type=int, default=0,
                        help="steps of a loop measured by tenths, engine alone and service (0: not run)")
    args = parser.parse_args()
    folder = scratch_dir()
    # the loops end once `n` (the number of steps completed) reaches `total`; a pass of the parallel loop is 2 steps
    totals = {f"loop_{args.loop}": args.loop, f"parallel_loop_{args.parallel_loop}": 2 * args.parallel_loop,
              f"inclusive_loop_{args.inclusive_loop}": 2 * args.inclusive_loop}
    processes = [sequential_bpmn(int(n)) for n in args.lengths.split(",")]
    processes += [loop_bpmn(args.loop), parallel_loop_bpmn(args.parallel_loop),
                  parallel_loop_bpmn(args.inclusive_loop, "inclusive"), parallel_bpmn(args.parallel)]
    long_loop = loop_bpmn(args.long_loop) if args.long_loop else None
    files = []
    for key, document in processes + ([long_loop] if long_loop else []):
        path = Path(folder) / f"{key}.bpmn"
        path.write_bytes(document)
        files.append(path)
    print("| process | steps | engine before: CPU ms/step start -> end (ratio) | engine after: CPU ms/step "
          "start -> end (ratio) | service ms/step start -> end (ratio) | state_json bytes at end (largest) "
          "| bytes per completed step | archive rows |")
    print("|---|---|---|---|---|---|---|---|")
    with private_database("bench_growth") as (url, _name):
        seed(url, files)
        service = Service(url)
        try:
            for (key, _document_bytes), path in zip(processes, files[:len(processes)], strict=True):
                total = totals.get(key, 0)
                _xml, compiled = engine.compile_bpmn(path.read_bytes())
                before, after = engine_steps(compiled[0].spec_json, total)
                service_times, sizes = service.run(key, total)
                b0, b1 = start_end(before.times)
                e0, e1 = start_end(after.times)
                s0, s1 = start_end(service_times)
                failed = f" failed at step {before.failed_at} ({before.failure})" if before.failed_at else ""
                print(f"| {key} | {len(service_times)} | {b0:.2f} -> {b1:.2f} ({b1 / b0:.1f}x){failed} | "
                      f"{e0:.2f} -> {e1:.2f} ({e1 / e0:.1f}x) | "
                      f"{s0:.1f} -> {s1:.1f} ({s1 / s0:.1f}x) | {sizes[-1]} ({max(sizes)}) | "
                      f"{(sizes[-1] - sizes[0]) / max(1, len(sizes) - 1):.0f} | {service.archive_rows} |", flush=True)
            if long_loop:
                by_tenths(long_loop[0], files[-1], args.long_loop, service)
        finally:
            service.context.engine.dispose()


if __name__ == "__main__":
    main()
