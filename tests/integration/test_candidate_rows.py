"""A task's candidate rows follow the task in the database (migration 0015): a row is open exactly while its task
is open and unassigned (claimable), and carries the task's due date, whichever command changed the task."""

from __future__ import annotations

from datetime import timedelta

from approvals_kit import act, deployed, only_task, start
from conftest import START
from sqlalchemy import insert, text, update
from test_approvals_inbox import JOINT_REVIEW

from bpm.adapters.orm import Task

ROWS = ("SELECT c.task_id, c.kind, c.name, c.is_open, c.due_at, t.status, t.assignee, t.due_at "
        "FROM task_candidates c JOIN tasks t ON t.id = c.task_id ORDER BY c.task_id, c.kind, c.name")


def candidate_rows(context) -> list[tuple]:
    with context.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(ROWS))]


def assert_rows_follow_their_tasks(context) -> list[tuple]:
    rows = candidate_rows(context)
    assert rows, "no candidate rows to check"
    for task_id, kind, name, is_open, due_at, status, assignee, task_due_at in rows:
        assert bool(is_open) == (status == "open" and assignee is None), (task_id, kind, name, status, assignee)
        assert _same_time(due_at, task_due_at), (task_id, kind, name, due_at, task_due_at)
    return rows


def _same_time(left, right) -> bool:
    if left is None or right is None:
        return left is right
    return str(left)[:19].replace("T", " ") == str(right)[:19].replace("T", " ")


def open_rows(context, task_id: str) -> set[tuple[str, str]]:
    return {(kind, name) for row_task, kind, name, is_open, *_ in candidate_rows(context)
            if row_task == task_id and is_open}


def test_candidate_rows_are_open_while_the_task_is_claimable(client, users, context, clock):
    deployed(client, users, JOINT_REVIEW)  # candidates: groups finance, directors; user carol
    start(client, users["ivan"], key="joint_review", business_key="J-1")
    task_id = only_task(client, users["bob"], business_key="J-1")["id"]
    offered = {("g", "finance"), ("g", "directors"), ("u", "carol")}
    assert open_rows(context, task_id) == offered
    assert_rows_follow_their_tasks(context)

    assert act(client, users["bob"], task_id, "claim").status_code == 200
    assert open_rows(context, task_id) == set()  # claimed: no longer claimable through any row
    assert_rows_follow_their_tasks(context)

    assert act(client, users["bob"], task_id, "unclaim").status_code == 200
    assert open_rows(context, task_id) == offered
    assert_rows_follow_their_tasks(context)

    moved = client.put(f"/api/v1/tasks/{task_id}/due-date", headers=users["admin"],
                       json={"due_at": (START + timedelta(days=5)).isoformat()})
    assert moved.status_code == 200, moved.json
    [due] = {row[4] for row in assert_rows_follow_their_tasks(context) if row[0] == task_id}
    assert str(due)[:10] == str((START + timedelta(days=5)).date())

    assert act(client, users["carol"], task_id, "claim").status_code == 200
    assert act(client, users["carol"], task_id, "delegate", to="bob").status_code == 200
    assert open_rows(context, task_id) == set()
    assert_rows_follow_their_tasks(context)


def test_candidate_rows_close_when_the_task_completes(client, users, context):
    deployed(client, users, JOINT_REVIEW)
    start(client, users["ivan"], key="joint_review", business_key="J-2")
    task_id = only_task(client, users["bob"], business_key="J-2")["id"]
    assert act(client, users["bob"], task_id, "claim").status_code == 200
    assert act(client, users["bob"], task_id, "unclaim").status_code == 200
    done = client.post(f"/api/v1/tasks/{task_id}/complete", headers=users["carol"], json={"variables": {}})
    assert done.status_code == 200, done.json
    assert open_rows(context, task_id) == set()
    assert {row[5] for row in assert_rows_follow_their_tasks(context)} == {"completed"}


def test_the_task_row_alone_writes_and_moves_its_candidate_rows(context):
    """Rows are written from the task's candidate lists when the task is inserted (each name once, any script),
    replaced when a list changes, and follow every change of its assignee, due date or status, whatever statement
    makes it."""
    with context.engine.begin() as connection:
        _insert_task(connection, "row-task", assignee="ann", due_at=START + timedelta(days=27),
                     groups=["finance", "finance", "法务"], users=["bea"])
    rows = assert_rows_follow_their_tasks(context)
    assert sorted((kind, name) for _task, kind, name, *_ in rows) == [("g", "finance"), ("g", "法务"), ("u", "bea")]
    assert open_rows(context, "row-task") == set()  # assigned: not claimable
    with context.engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET assignee = NULL, due_at = '2026-03-01 09:00:00+00:00' "
                                "WHERE id = 'row-task'"))
    assert open_rows(context, "row-task") == {("g", "finance"), ("g", "法务"), ("u", "bea")}
    assert_rows_follow_their_tasks(context)
    with context.engine.begin() as connection:
        connection.execute(update(Task).where(Task.id == "row-task").values(candidate_groups=["directors"],
                                                                            candidate_users=[]))
    assert open_rows(context, "row-task") == {("g", "directors")}
    assert_rows_follow_their_tasks(context)
    with context.engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET status = 'cancelled' WHERE id = 'row-task'"))
    assert open_rows(context, "row-task") == set()
    assert_rows_follow_their_tasks(context)


def _insert_task(connection, task_id: str, assignee: str | None, due_at, groups: list[str], users: list[str]):
    connection.execute(text(
        "INSERT INTO process_definitions (id, key, version, name, bpmn_xml, spec_json, model, checksum, deployed_at) "
        "VALUES (9001, 'rows', 1, 'Rows', '', '{}', '{}', 'x', '2026-01-05 09:00:00+00:00')"))
    connection.execute(text(
        "INSERT INTO process_instances (id, definition_id, process_key, status, state_json, version, started_at) "
        "VALUES ('row-inst', 9001, 'rows', 'running', '{}', 1, '2026-01-05 09:00:00+00:00')"))
    connection.execute(insert(Task).values(
        id=task_id, instance_id="row-inst", process_key="rows", element_id="a", name="A", status="open",
        assignee=assignee, candidate_groups=groups, candidate_users=users, due_at=due_at, priority=50,
        created_at=START))
