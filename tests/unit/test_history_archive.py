"""Long histories: finished tasks leave the stored state in archive chunks, and the engine predicts only the tasks
next to the live ones, so a step of a long loop or chain restores and serializes about as much as a step of a
short one; with its archive the whole task tree comes back (the path taken, send-back, migration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from test_long_processes import HEADER, chain

from bpm import engine

FLOW = '<bpmn:sequenceFlow id="{id}" sourceRef="{source}" targetRef="{target}"{rest}'
CONDITION = ('><bpmn:conditionExpression xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             'xsi:type="bpmn:tFormalExpression">${{{expression}}}</bpmn:conditionExpression></bpmn:sequenceFlow>')


def _flow(flow_id: str, source: str, target: str, again: bool = False, condition: str | None = None) -> str:
    condition = "n &lt; total" if again else condition
    rest = CONDITION.format(expression=condition) if condition else "/>"
    return FLOW.format(id=flow_id, source=source, target=target, rest=rest)


def _users(*element_ids: str) -> list[str]:
    return [f'<bpmn:userTask id="{element_id}" camunda:candidateGroups="team"/>' for element_id in element_ids]


def _process(key: str, body: list[str]) -> bytes:
    return (HEADER.format(key=key) + "".join(body) + "</bpmn:process></bpmn:definitions>").encode()


def loop() -> bytes:
    """start -> work -> more? (n < total: back to work) -> end."""
    return _process("loop", [
        '<bpmn:startEvent id="start"/>',
        '<bpmn:userTask id="work" camunda:candidateGroups="team"/>',
        '<bpmn:exclusiveGateway id="more" default="done"/>',
        '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "work"), _flow("f1", "work", "more"), _flow("again", "more", "work", again=True),
        _flow("done", "more", "end"),
    ])


def parallel_loop() -> bytes:
    """start -> split -> (a | b) -> join -> more? (n < total: back to split) -> end."""
    return _process("parallel_loop", [
        '<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="split"/>',
        *_users("a", "b"),
        '<bpmn:parallelGateway id="join"/>', '<bpmn:exclusiveGateway id="more" default="done"/>',
        '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "split"), _flow("f1", "split", "a"), _flow("f2", "split", "b"), _flow("f3", "a", "join"),
        _flow("f4", "b", "join"), _flow("f5", "join", "more"), _flow("again", "more", "split", again=True),
        _flow("done", "more", "end"),
    ])


class Run:
    """One instance moved step by step the way the server does: restore, complete, snapshot, store the chunks."""

    def __init__(self, bpmn: bytes, variables: dict):
        _, [process] = engine.compile_bpmn(bpmn)
        self.runtime = engine.ProcessRuntime(process.spec_json)
        workflow = self.runtime.new_workflow()
        engine.start(workflow, variables)
        self.chunks: list[str] = []
        self.sizes: list[int] = []
        self._keep(engine.snapshot(workflow))

    def _keep(self, snap: engine.Snapshot) -> None:
        if snap.archive is not None:
            if snap.archive.replace:
                self.chunks = []
            if snap.archive.chunk is not None:
                self.chunks.append(snap.archive.chunk)
        self.snap = snap
        self.sizes.append(len(snap.state_json))

    def complete(self, element_id: str, variables: dict) -> None:
        [task] = [t for t in self.snap.open_tasks if t.element_id == element_id]
        workflow = self.runtime.restore(self.snap.state_json)
        engine.complete(workflow, task.id, variables)
        self._keep(engine.snapshot(workflow))

    def whole(self):
        return self.runtime.restore(self.snap.state_json, self.chunks)


def test_a_long_loop_keeps_its_state_small_and_its_whole_path_in_the_archive():
    run = Run(loop(), {"n": 0, "total": 200})
    for n in range(1, 201):
        run.complete("work", {"n": n})
    assert run.snap.completed
    assert run.chunks, "finished iterations should have left the state"
    assert max(run.sizes[100:]) <= max(run.sizes[:30]) * 1.2, "the state grew with the iterations"
    archived = sum(len(json.loads(chunk)) for chunk in run.chunks)
    assert archived == json.loads(run.snap.state_json)["archive"]["archived"]
    path = engine.completed_elements(run.whole())
    assert path.count("work") == 200 and path.count("more") == 200
    assert path[:2] == ["start", "work"] and path[-2:] == ["more", "end"]


def test_a_whole_tree_deeper_than_a_thousand_tasks_still_shows_its_live_task_and_variables():
    # SpiffWorkflow's task walks stopped at depth 1000: restored with its archive (the instance page, send-back,
    # migration), a long loop lost its open task and its variables.
    run = Run(loop(), {"n": 0, "total": 1000})
    for n in range(1, 601):
        run.complete("work", {"n": n})
    whole = run.whole()
    assert len(whole.tasks) > 1200
    assert [task.element_id for task in engine.open_tasks(whole)] == ["work"]
    assert engine.variables_of(whole)["n"] == 600 and not whole.is_completed()
    assert engine.completed_elements(whole).count("work") == 600
    migrated = engine.migrate_state(engine.merge_archive(run.snap.state_json, run.chunks), run.runtime, whole=True)
    snap = engine.snapshot(migrated)
    assert [task.element_id for task in snap.open_tasks] == ["work"] and snap.archive.replace


def test_a_loop_through_a_parallel_join_waits_for_both_branches_in_any_order_and_keeps_its_state_small():
    # SpiffWorkflow's own gateway counted the copy a branch left at the join in the pass before as a token of
    # this pass: with the branches finishing in another order than last time, the join fired without waiting
    # and the next pass started beside the open task. It also walked the whole tree, recursively, at each
    # arrival: the 245th pass failed (recursion depth), and a step took over a second by then. The join now
    # decides from the tokens of this pass alone, and the loop's finished passes are archived.
    passes = 300
    run = Run(parallel_loop(), {"n": 0, "total": passes})
    for n in range(1, passes + 1):
        first, second = ("a", "b") if n % 3 else ("b", "a")
        last = n > passes - 5
        assert sorted(t.element_id for t in run.snap.open_tasks) == ["a", "b"], f"iteration {n}"
        run.complete(first, {f"{first}_{n}": True} if last else {})
        assert [t.element_id for t in run.snap.open_tasks] == [second], f"the join did not wait in iteration {n}"
        run.complete(second, {"n": n, f"{second}_{n}": True} if last else {"n": n})
    assert run.snap.completed
    assert max(run.sizes[100:]) <= max(run.sizes[:40]) * 1.2, "the state grew with the passes"
    path = engine.completed_elements(run.whole())
    assert [path.count(element) for element in ("split", "a", "b", "join")] == [passes] * 4
    variables = engine.variables_of(run.runtime.restore(run.snap.state_json))
    assert variables["n"] == passes
    assert all(variables.get(f"{branch}_{n}") for branch in "ab" for n in range(passes - 4, passes + 1)), \
        "the join merges what each branch of each pass wrote"


def test_a_second_token_on_the_same_flow_waits_for_the_next_firing_of_the_join():
    # a runs twice before b finishes; each run of a sends a token to the join through fork_a: the join fires
    # once, with b, and the second token of a keeps waiting there.
    bpmn = _process("tokens", [
        '<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="split"/>', *_users("a", "b", "after"),
        '<bpmn:parallelGateway id="fork_a"/>', '<bpmn:exclusiveGateway id="again_a" default="a_done"/>',
        '<bpmn:parallelGateway id="join"/>', '<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="end_a"/>',
        _flow("f0", "start", "split"), _flow("f1", "split", "a"), _flow("f2", "split", "b"),
        _flow("f3", "a", "fork_a"), _flow("to_join", "fork_a", "join"), _flow("f4", "fork_a", "again_a"),
        _flow("a_more", "again_a", "a", condition="n &lt; 2"), _flow("a_done", "again_a", "end_a"),
        _flow("f5", "b", "join"), _flow("f6", "join", "after"), _flow("f7", "after", "end"),
    ])
    run = Run(bpmn, {"n": 0})
    run.complete("a", {"n": 1})
    assert sorted(t.element_id for t in run.snap.open_tasks) == ["a", "b"], "the join fired without b"
    run.complete("a", {"n": 2})
    assert [t.element_id for t in run.snap.open_tasks] == ["b"], "the join fired without b"
    run.complete("b", {})
    assert [t.element_id for t in run.snap.open_tasks] == ["after"], "the join fired once per token of b"
    run.complete("after", {})
    workflow = run.runtime.restore(run.snap.state_json)
    waiting = [t for t in workflow.get_tasks(state=engine.TaskState.WAITING) if t.task_spec.bpmn_id == "join"]
    assert len(waiting) == 1 and not run.snap.completed, "the second token of a should still wait at the join"


def parallel_then_c() -> bytes:
    """start -> split -> (a | b) -> join -> c -> end."""
    return _process("sent_back", [
        '<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="split"/>', *_users("a", "b", "c"),
        '<bpmn:parallelGateway id="join"/>', '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "split"), _flow("f1", "split", "a"), _flow("f2", "split", "b"), _flow("f3", "a", "join"),
        _flow("f4", "b", "join"), _flow("f5", "join", "c"), _flow("f6", "c", "end"),
    ])


@pytest.mark.parametrize("sent_back", ["a", "b"])  # b reached the join first (its copy was consumed), a fired it
def test_sent_back_into_one_branch_the_join_fires_again_with_the_other_branch_already_done(sent_back):
    run = Run(parallel_then_c(), {})
    run.complete("b", {"b": 1})
    run.complete("a", {"a": 1})
    assert [t.element_id for t in run.snap.open_tasks] == ["c"]
    workflow = run.whole()
    engine.send_back(workflow, sent_back)
    run._keep(engine.snapshot(workflow))
    # SpiffWorkflow's reset leaves what followed the join open when the branch sent back is the one that reached
    # the join first (c, after b): the join replaces it when it fires again
    assert {t.element_id for t in run.snap.open_tasks} - {"c"} == {sent_back}, "the other branch does not rerun"
    run.complete(sent_back, {sent_back: 2})
    assert [t.element_id for t in run.snap.open_tasks] == ["c"], "the join should fire once, the other branch done"
    run.complete("c", {})
    assert run.snap.completed
    assert engine.variables_of(run.runtime.restore(run.snap.state_json)) == {"a": 1, "b": 1, sent_back: 2}
    assert engine.completed_elements(run.whole()).count("c") == 1, "what followed the first firing was replaced"


@pytest.mark.parametrize("sent_back", ["a", "b"])
def test_an_instance_joined_by_spiffworkflows_own_gateway_can_be_sent_back_into_a_branch(sent_back, monkeypatch):
    # stored before these join rules: its join copies carry no record of what they consumed
    for gateway, (update_hook, run_hook) in engine.SPIFFWORKFLOW_JOIN_HOOKS.items():
        monkeypatch.setattr(gateway, "_update_hook", update_hook)
        monkeypatch.setattr(gateway, "_run_hook", run_hook)
    run = Run(parallel_then_c(), {})
    run.complete("b", {"b": 1})
    run.complete("a", {"a": 1})
    assert [t.element_id for t in run.snap.open_tasks] == ["c"]
    monkeypatch.undo()
    workflow = run.whole()
    engine.send_back(workflow, sent_back)
    run._keep(engine.snapshot(workflow))
    run.complete(sent_back, {sent_back: 2})
    assert [t.element_id for t in run.snap.open_tasks] == ["c"], "the join should fire once, the other branch done"
    run.complete("c", {})
    assert run.snap.completed


def test_a_long_chain_predicts_only_the_next_steps():
    _, [process] = engine.compile_bpmn(chain(300))
    workflow = engine.ProcessRuntime(process.spec_json).new_workflow()
    engine.start(workflow, {})
    assert len(workflow.tasks) < 10, "the whole chain was predicted"
    assert "end" not in engine.state_task_specs(engine.snapshot(workflow).state_json)
    assert [t.element_id for t in engine.open_tasks(workflow)] == ["step_1"]


def inclusive_then_loop() -> bytes:
    """start -> fork (inclusive: a1 -> a2 -> a3 | b) -> merge -> work -> more? (back to work) -> end."""
    return _process("inclusive", [
        '<bpmn:startEvent id="start"/>', '<bpmn:inclusiveGateway id="fork"/>', *_users("a1", "a2", "a3", "b", "work"),
        '<bpmn:inclusiveGateway id="merge"/>', '<bpmn:exclusiveGateway id="more" default="done"/>',
        '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "fork"), _flow("f1", "fork", "a1", condition="go"), _flow("f2", "a1", "a2"),
        _flow("f3", "a2", "a3"), _flow("f4", "a3", "merge"), _flow("f5", "fork", "b", condition="go"),
        _flow("f6", "b", "merge"), _flow("f7", "merge", "work"), _flow("f8", "work", "more"),
        _flow("again", "more", "work", again=True), _flow("done", "more", "end"),
    ])


def test_an_inclusive_join_waits_for_a_branch_still_on_its_way_with_only_the_next_steps_predicted():
    run = Run(inclusive_then_loop(), {"go": True, "n": 0, "total": 40})
    assert "end" not in engine.state_task_specs(run.snap.state_json), "only the next steps should be predicted"
    run.complete("b", {})
    for element_id in ("a1", "a2"):
        assert [t.element_id for t in run.snap.open_tasks] == [element_id], "the merge fired before a3"
        run.complete(element_id, {})
    assert [t.element_id for t in run.snap.open_tasks] == ["a3"]
    run.complete("a3", {})
    for n in range(1, 41):
        run.complete("work", {"n": n})
    assert run.snap.completed and run.chunks
    path = engine.completed_elements(run.whole())
    assert path.count("merge") == 1 and path.count("work") == 40


def inclusive_loop() -> bytes:
    """start -> fork (inclusive: a if use_a, b if use_b) -> merge -> more? (n < total: back to fork) -> end."""
    return _process("inclusive_loop", [
        '<bpmn:startEvent id="start"/>', '<bpmn:inclusiveGateway id="fork"/>', *_users("a", "b"),
        '<bpmn:inclusiveGateway id="merge"/>', '<bpmn:exclusiveGateway id="more" default="done"/>',
        '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "fork"), _flow("f1", "fork", "a", condition="use_a"),
        _flow("f2", "fork", "b", condition="use_b"), _flow("f3", "a", "merge"), _flow("f4", "b", "merge"),
        _flow("f5", "merge", "more"), _flow("again", "more", "fork", again=True), _flow("done", "more", "end"),
    ])


def test_a_loop_through_an_inclusive_join_waits_for_exactly_the_branches_taken_in_each_pass():
    branches = [("a", "b"), ("a",), ("b",), ("b", "a")]  # taken in this pass, in the order they finish
    passes = 120

    def flags(n: int) -> dict:
        taken = branches[n % len(branches)]
        return {"use_a": "a" in taken, "use_b": "b" in taken}

    run = Run(inclusive_loop(), {"n": 0, "total": passes, **flags(1)})
    for n in range(1, passes + 1):
        taken = branches[n % len(branches)]
        assert sorted(t.element_id for t in run.snap.open_tasks) == sorted(taken), f"pass {n}"
        if len(taken) == 2:
            run.complete(taken[0], {})
            assert [t.element_id for t in run.snap.open_tasks] == [taken[1]], f"the merge did not wait in pass {n}"
        run.complete(taken[-1], {"n": n, **flags(n + 1)})
    assert run.snap.completed
    assert max(run.sizes[80:]) <= max(run.sizes[:40]) * 1.2, "the state grew with the passes"
    path = engine.completed_elements(run.whole())
    assert path.count("merge") == passes and path.count("a") == path.count("b") == passes * 3 // 4


def test_send_back_to_an_archived_step_resumes_there_and_replaces_the_archive():
    run = Run(chain(40), {})
    for step in range(1, 31):
        run.complete(f"step_{step}", {"seen": step})
    assert run.chunks
    workflow = run.whole()
    assert [e for _, e in engine.completed_user_steps(workflow)][:2] == ["step_1", "step_2"]
    engine.send_back(workflow, "step_2")
    snap = engine.snapshot(workflow)
    assert [t.element_id for t in snap.open_tasks] == ["step_2"]
    assert snap.archive is not None and snap.archive.replace
    run._keep(snap)
    for step in range(2, 41):
        run.complete(f"step_{step}", {"seen": step})
    assert run.snap.completed
    assert engine.completed_elements(run.whole()).count("step_3") == 1  # the reset dropped the first run of it


def test_send_back_to_the_first_step_of_a_long_loop_drops_the_thousand_tasks_after_it():
    # the reset drops what followed the step, recursively, one level per task: far deeper than Python's default
    # recursion limit once a long loop's archive is put back
    run = Run(_process("intake_loop", [
        '<bpmn:startEvent id="start"/>', *_users("intake", "work"), '<bpmn:exclusiveGateway id="more" default="done"/>',
        '<bpmn:endEvent id="end"/>', _flow("f0", "start", "intake"), _flow("f1", "intake", "work"),
        _flow("f2", "work", "more"), _flow("again", "more", "work", again=True), _flow("done", "more", "end"),
    ]), {"n": 0, "total": 1000})
    run.complete("intake", {})
    for n in range(1, 601):
        run.complete("work", {"n": n})
    workflow = run.whole()
    engine.send_back(workflow, "intake")
    run._keep(engine.snapshot(workflow))
    assert [t.element_id for t in run.snap.open_tasks] == ["intake"]
    run.complete("intake", {"n": 999})
    run.complete("work", {"n": 1000})
    assert run.snap.completed
    assert engine.completed_elements(run.whole()).count("work") == 1


def test_a_missing_archive_chunk_is_an_error_not_a_silently_shorter_history():
    run = Run(loop(), {"n": 0, "total": 60})
    for n in range(1, 61):
        run.complete("work", {"n": n})
    assert len(run.chunks) >= 2
    with pytest.raises(engine.EngineError, match="archive holds"):
        run.runtime.restore(run.snap.state_json, run.chunks[1:])


def test_a_boundary_timer_in_a_long_loop_fires_after_earlier_iterations_were_archived():
    """work has an interrupting 1-hour boundary timer leading to `chase`, which loops back to the gateway."""
    bpmn = _process("timed_loop", [
        '<bpmn:startEvent id="start"/>', *_users("work", "chase"),
        '<bpmn:boundaryEvent id="late" attachedToRef="work"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>',
        '<bpmn:exclusiveGateway id="more" default="done"/>', '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "work"), _flow("f1", "work", "more"), _flow("f2", "late", "chase"),
        _flow("f3", "chase", "more"), _flow("again", "more", "work", again=True), _flow("done", "more", "end"),
    ])
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with engine.clock_context(lambda: now):
        run = Run(bpmn, {"n": 0, "total": 30})
        for n in range(1, 21):
            run.complete("work", {"n": n})
        assert run.chunks and len(run.snap.timers) == 1
        workflow = run.runtime.restore(run.snap.state_json)
        [fired] = engine.fire_due_timers(workflow, now + timedelta(hours=1))
        assert fired.element_id == "late"
        run._keep(engine.snapshot(workflow))
        assert [t.element_id for t in run.snap.open_tasks] == ["chase"] and run.snap.timers == []
        run.complete("chase", {"n": 21})
        assert [t.element_id for t in run.snap.open_tasks] == ["work"] and len(run.snap.timers) == 1
        for n in range(22, 31):
            run.complete("work", {"n": n})
    assert run.snap.completed
    path = engine.completed_elements(run.whole())
    assert path.count("work") == 29 and path.count("late") == 1 and path.count("chase") == 1


def test_a_parallel_join_outside_any_loop_waits_for_both_branches_and_the_long_tail_is_archived():
    chain_tail = [f"step_{i}" for i in range(1, 31)]
    flows = [_flow(f"t{i}", a, b) for i, (a, b) in enumerate(zip(["join", *chain_tail], [*chain_tail, "end"],
                                                                   strict=True))]
    bpmn = _process("parallel_then_chain", [
        '<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="split"/>', *_users("a", "b", *chain_tail),
        '<bpmn:parallelGateway id="join"/>', '<bpmn:endEvent id="end"/>',
        _flow("f0", "start", "split"), _flow("f1", "split", "a"), _flow("f2", "split", "b"),
        _flow("f3", "a", "join"), _flow("f4", "b", "join"), *flows,
    ])
    run = Run(bpmn, {})
    run.complete("b", {})
    assert [t.element_id for t in run.snap.open_tasks] == ["a"], "the join fired before a"
    run.complete("a", {})
    for step in chain_tail:
        run.complete(step, {})
    assert run.snap.completed and run.chunks
    assert max(run.sizes[10:]) <= max(run.sizes[:6]) * 1.5
    path = engine.completed_elements(run.whole())
    assert path.count("join") == 1 and path[-2:] == ["step_30", "end"]


def test_an_instance_stored_before_the_archive_moves_on_and_gets_archived():
    """A state written with SpiffWorkflow's full prediction and whole tree (as stored before this engine)."""
    _, [process] = engine.compile_bpmn(chain(40))
    old_runtime = engine.ProcessRuntime(process.spec_json)
    for task_spec in old_runtime.spec.task_specs.values():
        del task_spec.bpm_predict_depth
    del old_runtime.spec.bpm_archives
    workflow = old_runtime.new_workflow()
    engine.start(workflow, {})
    for step in range(1, 11):
        engine.complete(workflow, engine.open_tasks(workflow)[0].id, {"seen": step})
    stored = engine.snapshot(workflow)
    assert stored.archive is None and "end" in engine.state_task_specs(stored.state_json)

    run = Run(chain(40), {})
    run.runtime = engine.ProcessRuntime(process.spec_json)  # today's runtime of the same version
    run.chunks, run.snap = [], stored
    for step in range(11, 41):
        run.complete(f"step_{step}", {"seen": step})
    assert run.snap.completed and run.chunks
    assert engine.completed_elements(run.whole()) == ["start", *[f"step_{i}" for i in range(1, 41)], "end"]


def test_a_boundary_event_reached_later_in_a_predicted_near_process_leads_on_when_it_fires():
    """The boundary event becomes WAITING straight from MAYBE (SpiffWorkflow's event split does not `_update` it):
    what follows it must already be predicted when the step before reaches it."""
    bpmn = _process("boundary_later", [
        '<bpmn:startEvent id="start"/>', *_users("first", "second", "third", "wait", "chase"),
        '<bpmn:boundaryEvent id="late" attachedToRef="wait"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration>P3D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>',
        '<bpmn:boundaryEvent id="later" attachedToRef="chase"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration>P9D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>',
        '<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="end_late"/>',
        _flow("f0", "start", "first"), _flow("f1", "first", "second"), _flow("f2", "second", "third"),
        _flow("f7", "third", "wait"), _flow("f3", "wait", "end"), _flow("f4", "late", "chase"),
        _flow("f5", "chase", "end"), _flow("f6", "later", "end_late"),
    ])
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with engine.clock_context(lambda: now):
        run = Run(bpmn, {})
        assert "chase" not in engine.state_task_specs(run.snap.state_json), "the path ahead was predicted in full"
        for element_id in ("first", "second", "third"):
            run.complete(element_id, {})
        workflow = run.runtime.restore(run.snap.state_json)
        [fired] = engine.fire_due_timers(workflow, now + timedelta(days=3))
        snap = engine.snapshot(workflow)
    assert fired.element_id == "late"
    assert [t.element_id for t in snap.open_tasks] == ["chase"]
    assert [t.element_id for t in snap.timers] == ["later"]
