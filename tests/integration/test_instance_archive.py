"""A long instance through the API: finished steps leave the state row for the instance archive, and what needs
the whole history still has it: the path taken, send-back to an early step, the row counts that tie them."""

from __future__ import annotations

import json

from approvals_kit import act, only_task, start
from conftest import deploy
from sqlalchemy import text

STEPS = 30


def chain(steps: int, without: str | None = None) -> bytes:
    """start -> step_1 -> ... -> end; `without`: that step is left out (a later version)."""
    ids = ["start", *[f"step_{i}" for i in range(1, steps + 1) if f"step_{i}" != without], "end"]
    body = ['<bpmn:startEvent id="start"/>', '<bpmn:endEvent id="end"/>']
    body += [f'<bpmn:userTask id="{i}" name="Step {i}" camunda:candidateGroups="team-leads"/>' for i in ids[1:-1]]
    body += [f'<bpmn:sequenceFlow id="f_{n}" sourceRef="{a}" targetRef="{b}"/>'
             for n, (a, b) in enumerate(zip(ids, ids[1:], strict=False))]
    return ('<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions '
            'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
            'id="defs" targetNamespace="http://bpmn.io/schema/bpmn"><bpmn:process id="long_chain" isExecutable="true">'
            + "".join(body) + "</bpmn:process></bpmn:definitions>").encode()


def archive_of(context, instance_id: str) -> tuple[int, int, int]:
    """(archive rows, tasks in them, tasks the state says are archived) for one instance."""
    with context.engine.connect() as connection:
        chunks = connection.execute(text("SELECT tasks FROM instance_archive WHERE instance_id = :i ORDER BY id"),
                                    {"i": instance_id}).scalars().all()
        state = json.loads(connection.execute(text("SELECT state_json FROM process_instances WHERE id = :i"),
                                              {"i": instance_id}).scalar_one())
    return len(chunks), sum(len(json.loads(c)) for c in chunks), state.get("archive", {}).get("archived", 0)


def approve(client, users, element_id: str) -> None:
    task = only_task(client, users["alice"])
    assert task["element_id"] == element_id
    response = act(client, users["alice"], task["id"], "approve")
    assert response.status_code == 200, response.json


def test_a_long_instance_archives_its_finished_steps_and_keeps_its_whole_path(client, users, context):
    assert deploy(client, users["dora"], chain(STEPS)).status_code == 201
    instance_id = start(client, users["ivan"], key="long_chain")
    for step in range(1, 26):
        approve(client, users, f"step_{step}")
    rows, archived, expected = archive_of(context, instance_id)
    assert rows >= 2 and archived == expected >= 16
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["admin"])
    assert detail.status_code == 200, detail.json
    assert detail.json["path"] == ["start", *[f"step_{i}" for i in range(1, 26)]]

    first = only_task(client, users["alice"])
    sent = act(client, users["alice"], first["id"], "send-back", to_element_id="step_2", comment="start over")
    assert sent.status_code == 200, sent.json
    again = only_task(client, users["alice"])
    assert again["element_id"] == "step_2"
    rows, archived, expected = archive_of(context, instance_id)
    assert archived == expected  # the archive was rewritten with the tree after the reset
    for step in range(2, STEPS + 1):
        approve(client, users, f"step_{step}")
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["admin"])
    assert detail.json["status"] == "completed"
    path = detail.json["path"]
    assert path[:3] == ["start", "step_1", "step_2"] and path[-2:] == [f"step_{STEPS}", "end"]
    assert path.count("step_3") == 1  # the run of step 3 before the send-back was dropped with the reset


def test_migration_checks_and_moves_the_archived_steps_too(client, users, context):
    assert deploy(client, users["dora"], chain(STEPS)).status_code == 201
    instance_id = start(client, users["ivan"], key="long_chain")
    for step in range(1, 21):
        approve(client, users, f"step_{step}")
    assert archive_of(context, instance_id)[1] >= 8
    url = "/api/v1/process-definitions/long_chain/migrations"
    # v2 lacks step_2, which only the archive still holds: the migration must see it
    assert deploy(client, users["dora"], chain(STEPS, without="step_2")).status_code == 201
    blocked = client.post(url, headers=users["dora"], json={"from_version": 1, "to_version": 2, "dry_run": True})
    assert blocked.status_code == 200, blocked.json
    [outcome] = blocked.json["instances"]
    assert outcome["can_move"] is False and "completed element 'step_2'" in outcome["reasons"][0]
    # v3 only renames: the instance moves with its whole history and goes on
    assert deploy(client, users["dora"], chain(STEPS).replace(b'name="Step step_25"', b'name="Last lap"')
                  ).status_code == 201
    moved = client.post(url, headers=users["dora"], json={"from_version": 1, "to_version": 3, "dry_run": False})
    assert moved.status_code == 200, moved.json
    assert moved.json["instances"][0]["moved"] is True, moved.json
    rows, archived, expected = archive_of(context, instance_id)
    assert archived == expected
    for step in range(21, STEPS + 1):
        approve(client, users, f"step_{step}")
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["admin"]).json
    assert detail["status"] == "completed" and detail["version"] == 3
    assert detail["path"] == ["start", *[f"step_{i}" for i in range(1, STEPS + 1)], "end"]
