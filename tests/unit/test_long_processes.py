"""Long processes: SpiffWorkflow parses and predicts a chain of elements recursively, one level per element, so
a chain of hundreds of user tasks needs a deeper stack than the default (the engine provides one and puts the
interpreter's recursion limit back afterwards). Also: the engine's flat task queries agree with the tree walk."""

from __future__ import annotations

import sys

from SpiffWorkflow.util.task import TaskState

from bpm import engine

HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n'
          '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
          'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="http://bpmn.io/schema/bpmn">'
          '<bpmn:process id="{key}" isExecutable="true">')


def chain(steps: int) -> bytes:
    ids = ["start", *[f"step_{i}" for i in range(1, steps + 1)], "end"]
    body = []
    for index, element_id in enumerate(ids):
        incoming = f"<bpmn:incoming>f_{index - 1}</bpmn:incoming>" if index else ""
        outgoing = f"<bpmn:outgoing>f_{index}</bpmn:outgoing>" if index < len(ids) - 1 else ""
        if element_id == "start":
            body.append(f'<bpmn:startEvent id="start">{outgoing}</bpmn:startEvent>')
        elif element_id == "end":
            body.append(f'<bpmn:endEvent id="end">{incoming}</bpmn:endEvent>')
        else:
            body.append(f'<bpmn:userTask id="{element_id}" name="Step {index}" '
                        f'camunda:candidateGroups="team">{incoming}{outgoing}</bpmn:userTask>')
        if index < len(ids) - 1:
            body.append(f'<bpmn:sequenceFlow id="f_{index}" sourceRef="{element_id}" targetRef="{ids[index + 1]}"/>')
    return (HEADER.format(key=f"chain_{steps}") + "".join(body) + "</bpmn:process></bpmn:definitions>").encode()


def test_a_chain_of_600_user_tasks_deploys_starts_and_moves_on():
    limit = sys.getrecursionlimit()
    _, [process] = engine.compile_bpmn(chain(600))
    runtime = engine.ProcessRuntime(process.spec_json)
    workflow = runtime.new_workflow()
    engine.start(workflow, {})
    snap = engine.snapshot(workflow)
    assert [t.element_id for t in snap.open_tasks] == ["step_1"]
    workflow = runtime.restore(snap.state_json)
    engine.complete(workflow, snap.open_tasks[0].id, {"approved": True})
    snap = engine.snapshot(workflow)
    assert [t.element_id for t in snap.open_tasks] == ["step_2"]
    assert sys.getrecursionlimit() == limit


def test_errors_inside_the_deep_stack_reach_the_caller():
    def fails():
        raise ValueError("inside")

    try:
        engine.call_with_deep_stack(fails)
    except ValueError as error:
        assert str(error) == "inside"
    else:
        raise AssertionError("the error was swallowed")
    assert engine.call_with_deep_stack(lambda a, b: a + b, 2, 3) == 5


def test_flat_task_queries_agree_with_the_tree_walk():
    _, [process] = engine.compile_bpmn(chain(3))
    runtime = engine.ProcessRuntime(process.spec_json)
    workflow = runtime.new_workflow()
    engine.start(workflow, {})
    for _ in range(3):
        for state, manual in ((TaskState.READY, True), (TaskState.READY, None), (TaskState.WAITING, None),
                              (TaskState.FUTURE, None), (TaskState.COMPLETED, None)):
            assert engine.tasks_in_state(workflow, state, manual) == workflow.get_tasks(state=state, manual=manual)
        [ready] = engine.tasks_in_state(workflow, TaskState.READY, True)
        engine.complete(workflow, str(ready.id), {})
    assert workflow.is_completed()
