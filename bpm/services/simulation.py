"""Scenario simulation: run a process in memory on a simulated clock and explain everything that happened.

Designers give start variables, the outcome of each user task, clock jumps and incoming messages; the result
is the path taken, every gateway decision (expression, values, branch), the timers that fired, each user
task's SLA outcome (due vs completed on the simulated clock) and the final variables. Nothing is stored.
Saved scenarios of a process key run as a regression suite on every upload of that key (a deploy hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bpm import engine
from bpm.adapters.orm import ProcessDefinition
from bpm.adapters.orm_integrations import SavedScenario
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import ManualClock, utc
from bpm.domain.errors import DeploymentRejected, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services import definitions
from bpm.services.projection import explain_decision, resolve_assignment

DEFAULT_MAX_STEPS = 100
MAX_STEPS = 1000
MAX_ADVANCE = timedelta(days=3660)


class ScenarioFailed(Exception):
    def __init__(self, step: int | None, message: str):
        super().__init__(message)
        self.step = step
        self.message = message


@dataclass
class Simulation:
    """The in-memory run: the workflow, the simulated clock and everything observed so far."""

    runtime: engine.ProcessRuntime
    model: dict[str, Any]
    clock: ManualClock
    workflow: Any = None
    path_events: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    timers_fired: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def run(self, step) -> None:
        with engine.clock_context(self.clock.now):
            try:
                step()
            except engine.EngineError as error:
                where = f" at '{error.element_id}'" if error.element_id else ""
                raise ScenarioFailed(None, f"the process failed{where}: {error}") from error
            self._observe()

    def _observe(self) -> None:
        self._collect_decisions()
        for open_task in engine.open_tasks(self.workflow):
            if open_task.id not in self.tasks:
                self.tasks[open_task.id] = self._describe_task(open_task)

    def _describe_task(self, open_task: engine.OpenTask) -> dict[str, Any]:
        declared = self.model.get("user_tasks", {}).get(open_task.element_id, {})
        try:
            assignment = resolve_assignment(open_task, declared, self.clock.now())
        except Exception as error:  # noqa: BLE001 - an unresolvable attribute is a finding, not a crash
            assignment = {"error": str(error)}
        due = assignment.get("due_at")
        return {"element_id": open_task.element_id, "name": open_task.name, "created_at": self.clock.now(),
                "due_at": due, "assignee": assignment.get("assignee"),
                "candidate_groups": assignment.get("candidate_groups", []), "completed_at": None, "sla": "open"}

    def _collect_decisions(self) -> None:
        evaluations = self.workflow.script_engine.take_decisions()
        grouped: dict[str, list[engine.Decision]] = {}
        for decision in evaluations:
            grouped.setdefault(decision.gateway_id, []).append(decision)
        gateways = self.model.get("gateways", {})
        for gateway_id, items in grouped.items():
            self.decisions.append({"gateway_id": gateway_id, "gateway_name": items[0].gateway_name,
                                   "at": self.clock.now(), **explain_decision(gateways.get(gateway_id, {}), items)})


# --- running a scenario ----------------------------------------------------------------------------------------


def simulate(runtime: engine.ProcessRuntime, model: dict[str, Any], scenario: dict[str, Any],
             start: datetime) -> dict[str, Any]:
    """Run `scenario` against a parsed process; never raises for a failing scenario (see `ok` and `failure`)."""
    sim = Simulation(runtime, model, ManualClock(utc(start)))
    steps = scenario.get("steps") or []
    max_steps = min(int(scenario.get("max_steps") or DEFAULT_MAX_STEPS), MAX_STEPS)
    failure = None
    try:
        sim.workflow = runtime.new_workflow()
        sim.run(lambda: engine.start(sim.workflow, dict(scenario.get("variables") or {})))
        for index, step in enumerate(steps[:max_steps], start=1):
            _run_step(sim, index, step)
        if len(steps) > max_steps:
            raise ScenarioFailed(max_steps + 1, f"the scenario has more than max_steps={max_steps} steps")
    except ScenarioFailed as error:
        failure = {"step": error.step, "message": error.message}
    result = _result(sim, failure)
    _check_expectations(result, scenario.get("expect") or {})
    return result


def _run_step(sim: Simulation, index: int, step: dict[str, Any]) -> None:
    try:
        if not isinstance(step, dict):
            raise ScenarioFailed(index, "a step is an object with 'task', 'advance' or 'message'")
        if "task" in step:
            _complete(sim, step["task"], step.get("variables") or {})
        elif "advance" in step:
            _advance(sim, str(step["advance"]))
        elif "message" in step:
            _message(sim, str(step["message"]), step.get("variables") or {})
        else:
            raise ScenarioFailed(index, "a step needs 'task', 'advance' or 'message'")
    except ScenarioFailed as error:
        raise ScenarioFailed(index, f"step {index} ({_label(step)}): {error.message}") from error


def _label(step: Any) -> str:
    if not isinstance(step, dict):
        return "invalid"
    for kind in ("task", "advance", "message"):
        if kind in step:
            return f"{kind} {step[kind]}"
    return "invalid"


def _complete(sim: Simulation, element_id: str, variables: dict[str, Any]) -> None:
    ready = [t for t in engine.open_tasks(sim.workflow) if t.element_id == element_id]
    if not ready:
        open_ids = sorted({t.element_id for t in engine.open_tasks(sim.workflow)}) or ["none"]
        raise ScenarioFailed(None, f"task '{element_id}' is not open (open: {', '.join(open_ids)})")
    task = ready[0]
    sim.run(lambda: engine.complete(sim.workflow, task.id, variables))
    record = sim.tasks.get(task.id)
    if record is not None:
        record["completed_at"] = sim.clock.now()
        record["sla"] = _sla(record["due_at"], record["completed_at"])


def _sla(due: datetime | None, done: datetime) -> str:
    if due is None:
        return "no due date"
    return "met" if done <= due else "missed"


def _advance(sim: Simulation, duration: str) -> None:
    try:
        target = engine.resolve_due(duration if duration.startswith("P") else f"P{duration}", {}, sim.clock.now())
    except Exception as error:  # noqa: BLE001 - any parse failure is the designer's input
        raise ScenarioFailed(None, f"'{duration}' is not an ISO-8601 duration such as P1D or PT4H") from error
    if target is None or target < sim.clock.now() or target - sim.clock.now() > MAX_ADVANCE:
        raise ScenarioFailed(None, f"advance '{duration}' must move the clock forward by at most ten years")
    # Fire timers in due order so that each one fires at its own due time on the simulated clock.
    for _ in range(MAX_STEPS):
        due = sorted(t.due_at for t in engine.waiting_timers(sim.workflow) if t.due_at <= target)
        if not due:
            break
        sim.clock.set(max(due[0], sim.clock.now()))
        fired: list[engine.WaitingTimer] = []
        sim.run(lambda fired=fired: fired.extend(engine.fire_due_timers(sim.workflow, sim.clock.now())))
        if not fired:
            break
        sim.timers_fired += [{"element_id": t.element_id, "due_at": t.due_at, "fired_at": sim.clock.now()}
                             for t in fired]
    sim.clock.set(target)


def _message(sim: Simulation, name: str, variables: dict[str, Any]) -> None:
    try:
        sim.run(lambda: engine.send_message(sim.workflow, name, variables))
    except ScenarioFailed as error:
        raise ScenarioFailed(None, error.message) from error
    sim.messages.append({"name": name, "at": sim.clock.now()})


def _result(sim: Simulation, failure: dict[str, Any] | None) -> dict[str, Any]:
    workflow = sim.workflow
    completed = bool(workflow is not None and workflow.is_completed())
    return {
        "ok": failure is None,
        "failure": failure,
        "completed": completed,
        "path": engine.completed_elements(workflow) if workflow is not None else [],
        "decisions": sim.decisions,
        "timers_fired": sim.timers_fired,
        "messages": sim.messages,
        "tasks": list(sim.tasks.values()),
        "open_tasks": [t.element_id for t in engine.open_tasks(workflow)] if workflow is not None else [],
        "waiting_timers": [{"element_id": t.element_id, "due_at": t.due_at}
                           for t in engine.waiting_timers(workflow)] if workflow is not None else [],
        "waiting_messages": [m.name for m in engine.waiting_messages(workflow)] if workflow is not None else [],
        "variables": _jsonable(engine.variables_of(workflow)) if workflow is not None else {},
        "finished_at": sim.clock.now(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _check_expectations(result: dict[str, Any], expect: dict[str, Any]) -> None:
    """Optional `expect`: {completed, path_includes, path_excludes, variables}; a miss fails the scenario."""
    if not result["ok"] or not expect:
        return
    misses = []
    if "completed" in expect and bool(expect["completed"]) != result["completed"]:
        misses.append(f"expected completed={bool(expect['completed'])}, got {result['completed']}")
    misses += [f"expected the path to include '{e}'" for e in expect.get("path_includes") or []
               if e not in result["path"]]
    misses += [f"expected the path not to include '{e}'" for e in expect.get("path_excludes") or []
               if e in result["path"]]
    misses += [f"expected variable {k}={v!r}, got {result['variables'].get(k)!r}"
               for k, v in (expect.get("variables") or {}).items() if result["variables"].get(k) != v]
    if misses:
        result["ok"], result["failure"] = False, {"step": "expect", "message": "; ".join(misses)}


# --- entry points ----------------------------------------------------------------------------------------------


def simulate_bpmn(data: bytes, scenario: dict[str, Any], start: datetime, process_id: str | None = None,
                  options: engine.CompileOptions | None = None) -> dict[str, Any]:
    """Compile an upload in memory (the deploy checks apply: a 422 names the element) and simulate."""
    try:
        _, compiled = engine.compile_bpmn(data, options or engine.CompileOptions())
    except engine.CompileError as error:
        problems = [p.to_dict() for p in error.problems]
        raise DeploymentRejected(f"the BPMN cannot be simulated: {error.problems[0].message}", problems) from error
    chosen = [c for c in compiled if process_id in (None, c.key)]
    if not chosen:
        raise ValidationFailed(f"process '{process_id}' is not in the file",
                               {"process_id": [", ".join(c.key for c in compiled)]})
    runtime = engine.ProcessRuntime(chosen[0].spec_json, bool(options and options.allow_scripts))
    return {"process_key": chosen[0].key, **simulate(runtime, chosen[0].model, scenario, start)}


@dataclass
class SimulateRequest:
    actor: Actor
    scenario: dict[str, Any]
    bpmn: str | None = None
    process_key: str | None = None
    version: int | None = None


def run_simulation(request: SimulateRequest, uow: UnitOfWork) -> dict[str, Any]:
    if not request.actor.may("deploy"):
        raise PermissionDenied(f"'{request.actor.username}' may not simulate (needs the deploy permission)")
    if request.bpmn:
        return simulate_bpmn(request.bpmn.encode(), request.scenario, uow.clock.now(), request.process_key,
                             definitions.compile_options(uow))
    if not request.process_key:
        raise ValidationFailed("give `bpmn` or `process_key`", {"bpmn": ["BPMN XML text or a deployed process_key"]})
    with uow:
        definition = definitions.get_definition(uow, request.process_key, request.version)
        return _simulate_definition(uow, definition, request.scenario)


def _simulate_definition(uow: UnitOfWork, definition: ProcessDefinition, scenario: dict[str, Any]):
    runtime = definitions.runtime_for(definition, bool(uow.settings and uow.settings.allow_scripts == "restricted"))
    result = simulate(runtime, definition.model, scenario, uow.clock.now())
    return {"process_key": definition.key, "version": definition.version, **result}


# --- saved scenarios and the regression suite -----------------------------------------------------------------


@dataclass
class SaveScenario:
    process_key: str
    name: str
    scenario: dict[str, Any]
    actor: Actor
    description: str = ""


def save_scenario(cmd: SaveScenario, uow: UnitOfWork) -> tuple[SavedScenario, dict[str, Any]]:
    """Save (or replace by name) a scenario of a process key; returns it with its result on the newest version."""
    if not cmd.actor.may("deploy"):
        raise PermissionDenied(f"'{cmd.actor.username}' may not save scenarios (needs the deploy permission)")
    with uow:
        definition = definitions.latest_definition(uow, cmd.process_key)
        result = _simulate_definition(uow, definition, cmd.scenario)
        row = uow.session.scalar(select(SavedScenario).where(SavedScenario.process_key == cmd.process_key,
                                                             SavedScenario.name == cmd.name))
        if row is None:
            row = SavedScenario(process_key=cmd.process_key, name=cmd.name, created_at=uow.clock.now())
            uow.session.add(row)
        row.scenario, row.expect = cmd.scenario, cmd.scenario.get("expect") or {}
        row.description, row.created_by = cmd.description, cmd.actor.username
        uow.commit()
        return row, result


def list_scenarios(uow: UnitOfWork, actor: Actor, process_key: str) -> list[SavedScenario]:
    if not actor.may("read"):
        raise PermissionDenied(f"'{actor.username}' may not read scenarios")
    with uow:
        definitions.latest_definition(uow, process_key)
        return list(uow.session.scalars(select(SavedScenario).where(SavedScenario.process_key == process_key)
                                        .order_by(SavedScenario.name)))


def delete_scenario(uow: UnitOfWork, actor: Actor, process_key: str, name: str) -> None:
    if not actor.may("deploy"):
        raise PermissionDenied(f"'{actor.username}' may not delete scenarios")
    with uow:
        row = uow.session.scalar(select(SavedScenario).where(SavedScenario.process_key == process_key,
                                                             SavedScenario.name == name))
        if row is None:
            raise NotFound(f"scenario '{name}' of '{process_key}' not found")
        uow.session.delete(row)
        uow.commit()


def run_regression_suite(uow: UnitOfWork, rows: list[ProcessDefinition], cmd) -> None:
    """Deploy hook: every saved scenario of each new version's key must pass, unless the upload is forced."""
    if getattr(cmd, "force", False):
        return
    for definition in rows:
        saved = uow.session.scalars(select(SavedScenario).where(SavedScenario.process_key == definition.key)
                                    .order_by(SavedScenario.name))
        for scenario in saved:
            result = _simulate_definition(uow, definition, scenario.scenario)
            if not result["ok"]:
                failure = result["failure"]
                raise DeploymentRejected(
                    f"saved scenario '{scenario.name}' fails on the new version at step {failure['step']}: "
                    f"{failure['message']} (deploy with ?force=true to override)",
                    [{"rule": "scenario", "scenario": scenario.name, "step": failure["step"],
                      "message": failure["message"], "element_id": None}])


if run_regression_suite not in definitions.DEPLOY_HOOKS:
    definitions.DEPLOY_HOOKS.append(run_regression_suite)
