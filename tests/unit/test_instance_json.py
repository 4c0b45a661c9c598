"""The instance state's JSON: bpm.engine writes the same records as SpiffWorkflow's own converters, and a state
restored by either gives back the same JSON and runs on the same way. Each task id is converted once per call
(engine._TaskIds) instead of at every mention; these tests compare the two on every process the project ships
or tests with, at every step of a scripted run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from conftest import bpmn_fixture
from SpiffWorkflow.bpmn.serializer.default.workflow import TaskConverter, WorkflowConverter
from test_history_archive import loop

from bpm import engine, rules
from bpm.rule_defaults import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Answers for the gateways and assignments of the shipped and fixture processes, wherever a task asks.
ANSWERS = {"approved": True, "decision": "approve", "amount": 1200, "outcome": "approved", "accepted": True,
           "valid": True, "severity": "high", "result": "ok", "interested": True, "items": ["a", "b"],
           "approvers": ["ann", "bob"]}


class SpiffInstanceConverter(engine.InstanceOnlyConverter):
    """The reference: SpiffWorkflow's WorkflowConverter and TaskConverter as they are, ids converted at every
    mention (the instance converter as it was before _TaskIds)."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        archive = getattr(workflow, "bpm_archive", None)
        if archive is not None:
            dct["archive"] = archive
            engine._with_full_data(self.registry, dct["tasks"][archive["cut"]], workflow.tasks[UUID(archive["cut"])])
        return dct

    def from_dict(self, dct):
        spec, subprocess_specs = engine._current_specs.get()
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        workflow.bpm_archive = dct.get("archive")
        return workflow


REFERENCE = engine._make_serializer(SpiffInstanceConverter, TaskConverter)
OURS = engine.INSTANCE_SERIALIZER


def _sources() -> list[bytes]:
    files = sorted((ROOT / "processes").glob("*.bpmn")) + sorted((ROOT / "tests" / "fixtures" / "bpmn").glob("*.bpmn"))
    return [path.read_bytes() for path in files] + [loop()]


def _restore(runtime, serializer, state: str):
    token = engine._current_specs.set((runtime.spec, runtime.subprocess_specs))
    try:
        return serializer.deserialize_json(state)
    finally:
        engine._current_specs.reset(token)


def _compare(runtime, workflow) -> str:
    """Both serializers on the live workflow, then each on a state restored by the other: the same text."""
    ours, reference = OURS.serialize_json(workflow), REFERENCE.serialize_json(workflow)
    assert ours == reference
    assert OURS.serialize_json(_restore(runtime, REFERENCE, ours)) == ours
    assert REFERENCE.serialize_json(_restore(runtime, OURS, ours)) == ours
    return ours


def _scripted_run(runtime, steps: int = 12) -> list[str]:
    """The states of a run that completes the first ready user task with ANSWERS and fires due timers, step by
    step, each restored from the previous state with our serializer first. A step the process refuses (a rule
    store or a message it needs) ends the run: the states before it were compared."""
    workflow = runtime.new_workflow()
    with engine.clock_context(lambda: NOW):
        engine.start(workflow, dict(ANSWERS))
    states = [_compare(runtime, workflow)]
    for step in range(steps):
        workflow = _restore(runtime, OURS, states[-1])
        ready = engine.snapshot(workflow).open_tasks
        at = NOW + timedelta(days=step + 1)
        try:
            with engine.clock_context(lambda at=at: at):
                if ready:
                    engine.complete(workflow, ready[0].id, dict(ANSWERS))
                elif not engine.fire_due_timers(workflow, at):
                    break
        except Exception:  # noqa: BLE001 - whatever the process refuses, the states before it were compared
            break
        states.append(_compare(runtime, workflow))
    return states


@pytest.fixture
def shipped_rules():
    """Rule tasks answer with the shipped rules (the rule store is a service; the engine only calls it)."""
    engine.set_rule_evaluator(lambda name, data: (rules.evaluate(DEFAULTS[name][1], data), f"{name} v1", {}))
    yield
    engine.set_rule_evaluator(None)


def test_every_shipped_and_fixture_process_serializes_as_spiffworkflow_does(shipped_rules):
    compared, kinds = 0, set()
    for data in _sources():
        _, processes = engine.compile_bpmn(data)
        for process in processes:
            states = _scripted_run(engine.ProcessRuntime(process.spec_json))
            compared += len(states)
            kinds |= _what_the_states_hold(states)
    assert compared >= 60
    # The run reached what the records carry beyond plain tasks: waiting timers and messages (the event
    # manager), subprocesses, data that differs from the parent's, and the archive of a long history.
    assert {"waiting", "subprocess", "delta", "archive"} <= kinds, kinds


def _what_the_states_hold(states: list[str]) -> set[str]:
    kinds = set()
    for state in map(json.loads, states):
        records = state["tasks"].values()
        if any(record["state"] == 8 for record in records):  # TaskState.WAITING
            kinds.add("waiting")
        if state["subprocesses"]:
            kinds.add("subprocess")
        if any(record["delta"].get("updates") or record["delta"].get("deletions") for record in records):
            kinds.add("delta")
        if state.get("archive"):
            kinds.add("archive")
    return kinds


def test_restored_ids_are_shared_and_the_tree_links_up():
    _, [process] = engine.compile_bpmn(bpmn_fixture("approval_chain.bpmn"))
    runtime = engine.ProcessRuntime(process.spec_json)
    workflow = runtime.new_workflow()
    engine.start(workflow, dict(ANSWERS))
    restored = _restore(runtime, OURS, OURS.serialize_json(workflow))
    assert {str(task_id) for task_id in restored.tasks} == {str(task_id) for task_id in workflow.tasks}
    for task_id, task in restored.tasks.items():
        assert task.id is task_id
        assert all(restored.tasks[child].parent is task for child in task._children)
        if task._parent is not None:
            assert task._parent is task.parent.id
    assert engine.snapshot(restored).open_tasks == engine.snapshot(workflow).open_tasks


def test_a_record_converted_alone_is_the_reference_record():
    """Outside a whole-instance call (the archive's records) the task converter works on its own."""
    _, [process] = engine.compile_bpmn(bpmn_fixture("approval_chain.bpmn"))
    workflow = engine.ProcessRuntime(process.spec_json).new_workflow()
    engine.start(workflow, dict(ANSWERS))
    for task in workflow.tasks.values():
        assert OURS.registry.convert(task) == REFERENCE.registry.convert(task)
