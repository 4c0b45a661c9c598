"""The initiator's list: GET /api/v1/process-instances?started_by=me (newest first, keyset pages, current steps)."""

from __future__ import annotations

from datetime import timedelta

from approvals_kit import act, only_task, start
from conftest import bpmn_fixture, deploy
from sqlalchemy import inspect

EXPENSE = bpmn_fixture("expense_approval.bpmn")


def _deployed(client, users):
    response = deploy(client, users["dora"], EXPENSE)
    assert response.status_code == 201, response.json


def _mine(client, headers, **params):
    response = client.get("/api/v1/process-instances", headers=headers, query_string={"started_by": "me", **params})
    assert response.status_code == 200, response.json
    return response.json


def test_lists_only_my_instances_newest_first_in_keyset_pages(client, users, clock):
    _deployed(client, users)
    started = []
    for number in range(5):
        started.append(start(client, users["eve"], key="expense_approval", business_key=f"EVE-{number}", amount=10))
        start(client, users["bob"], key="expense_approval", business_key=f"BOB-{number}", amount=10)
        if number != 2:  # EVE-2 and EVE-3 start at the same moment: the id breaks the tie
            clock.advance(timedelta(minutes=1))
    pages, after = [], None
    while True:
        page = _mine(client, users["eve"], limit=2, **({"after": after} if after else {}))
        if not page:
            break
        pages.append([row["business_key"] for row in page])
        after = page[-1]["id"]
    keys = [key for page in pages for key in page]
    assert sorted(keys) == [f"EVE-{n}" for n in range(5)] and len(pages) == 3
    assert keys[:1] == ["EVE-4"] and keys[-2:] == ["EVE-1", "EVE-0"]
    tied = sorted(started[2:4], reverse=True)
    assert [started[int(key[-1])] for key in keys[1:3]] == tied
    assert {row["started_by"] for row in _mine(client, users["bob"])} == {"bob"}


def test_with_tasks_names_the_current_step_its_holders_and_overdue(client, users, clock):
    _deployed(client, users)
    instance_id = start(client, users["eve"], key="expense_approval", business_key="EVE-T", amount=5000)
    [row] = _mine(client, users["eve"], with_tasks="true")
    assert (row["id"], row["process_name"], row["status"], row["outcome"]) == \
        (instance_id, "Expense approval", "running", "running")
    [step] = row["open_tasks"]
    assert (step["name"], step["assignee"], step["candidate_groups"]) == ("Team lead review", None, ["team-leads"])
    assert step["overdue"] is False and row["overdue"] is False
    clock.advance(timedelta(days=2, minutes=1))  # the step is due in P2D
    [row] = _mine(client, users["eve"], with_tasks="true")
    assert row["overdue"] is True and row["open_tasks"][0]["overdue"] is True
    task = only_task(client, users["alice"], business_key="EVE-T")
    assert act(client, users["alice"], task["id"], "claim").status_code == 200
    assert act(client, users["alice"], task["id"], "approve").status_code == 200
    [row] = _mine(client, users["eve"], with_tasks="true")
    assert [(s["name"], s["candidate_groups"]) for s in row["open_tasks"]] == [("Finance review", ["finance"])]
    assert "open_tasks" not in _mine(client, users["eve"])[0]  # only on request
    listed = client.get("/api/v1/process-instances", headers=users["admin"],
                        query_string={"business_key": "EVE-T", "with_tasks": "true"})
    assert [step["name"] for step in listed.json[0]["open_tasks"]] == ["Finance review"]


def test_withdrawn_instances_say_so_and_the_status_filter_applies(client, users):
    _deployed(client, users)
    kept = start(client, users["eve"], key="expense_approval", business_key="EVE-K", amount=10)
    gone = start(client, users["eve"], key="expense_approval", business_key="EVE-W", amount=10)
    withdrawn = client.post(f"/api/v1/process-instances/{gone}/withdraw", headers=users["eve"], json={})
    assert withdrawn.status_code == 200, withdrawn.json
    rows = {row["id"]: row for row in _mine(client, users["eve"], with_tasks="true")}
    assert (rows[gone]["status"], rows[gone]["outcome"], rows[gone]["open_tasks"]) == ("cancelled", "withdrawn", [])
    assert rows[kept]["outcome"] == "running"
    assert [row["id"] for row in _mine(client, users["eve"], status="running")] == [kept]


def test_anyone_may_list_their_own_but_not_everyones(client, users):
    _deployed(client, users)
    start(client, users["eve"], key="expense_approval", business_key="EVE-N", amount=10)
    assert _mine(client, users["nobody"]) == []
    everyone = client.get("/api/v1/process-instances", headers=users["nobody"])
    assert everyone.status_code == 403
    assert client.get("/api/v1/process-instances?started_by=me").status_code == 401


def test_a_page_position_from_elsewhere_is_refused(client, users):
    _deployed(client, users)
    bobs = start(client, users["bob"], key="expense_approval", business_key="BOB-X", amount=10)
    response = client.get("/api/v1/process-instances", headers=users["eve"],
                          query_string={"started_by": "me", "after": bobs})
    assert response.status_code == 422 and "after" in response.json["errors"]


def test_the_initiator_index_is_migrated(context):
    indexes = {index["name"]: index["column_names"] for index in inspect(context.engine).get_indexes(
        "process_instances")}
    assert indexes["ix_instances_started_by"] == ["started_by", "started_at", "id"]


def test_the_full_list_shows_an_approver_only_what_involves_them(client, users):
    _deployed(client, users)
    mine = start(client, users["eve"], key="expense_approval", business_key="EVE-X", amount=5000)
    theirs = start(client, users["ivan"], key="expense_approval", business_key="IVAN-X", amount=5000)

    def listed(user):
        response = client.get("/api/v1/process-instances", headers=users[user])
        assert response.status_code == 200, response.json
        return {row["id"] for row in response.json}

    assert listed("eve") == {mine}  # started it; has no task in IVAN-X
    assert listed("alice") == {mine, theirs}  # team-leads are candidates of the first step of both
    assert listed("bob") == set()  # finance has no step yet
    assert listed("ivan") == {mine, theirs}  # integrators read every instance
    task_id = only_task(client, users["alice"], business_key="IVAN-X")["id"]
    assert act(client, users["alice"], task_id, "approve", opinion="ok").status_code == 200
    assert listed("bob") == {theirs}  # now a finance step is open in IVAN-X
    assert listed("alice") == {mine, theirs}  # and alice keeps seeing the one she completed
    finance = only_task(client, users["bob"], business_key="IVAN-X")["id"]
    assert act(client, users["bob"], finance, "claim").status_code == 200
    transferred = act(client, users["bob"], finance, "transfer", to="carol", comment="yours")
    assert transferred.status_code == 200, transferred.json
    assert listed("carol") == {theirs}  # assigned to her, though not a candidate
    assert listed("eve") == {mine}



def test_an_approvers_pages_hold_exactly_their_instances_in_id_order(client, users):
    """Unfiltered, an approver's page takes the first `limit` involved ids after the cursor before reading any
    instance; page by page it must list what one whole list shows, and the status filter still applies."""
    _deployed(client, users)
    started = [start(client, users[user], key="expense_approval", business_key=f"{user}-{number}", amount=5000)
               for number in range(3) for user in ("eve", "ivan", "bob")]
    finance = only_task(client, users["alice"], business_key="ivan-1")["id"]
    assert act(client, users["alice"], finance, "approve", opinion="ok").status_code == 200
    last = max(started[0::3])  # eve's instance with the highest id: on no first page
    assert client.post(f"/api/v1/process-instances/{last}/cancel", headers=users["eve"], json={}).status_code == 200

    def listed(user, **params):
        response = client.get("/api/v1/process-instances", headers=users[user], query_string=params)
        assert response.status_code == 200, response.json
        return [row["id"] for row in response.json]

    for user, expected in (("eve", {i for i in started if i in started[0::3]}), ("alice", set(started)),
                           ("bob", set(started[2::3]) | {started[4]})):
        whole = listed(user, limit=100)
        assert whole == sorted(expected), user
        pages, after = [], None
        while True:
            page = listed(user, limit=2, **({"after": after} if after else {}))
            if not page:
                break
            assert len(page) <= 2
            pages += page
            after = page[-1]
        assert pages == whole, user
        running = [i for i in whole if i != last]
        assert listed(user, status="running", limit=2) == running[:2], user
        assert listed(user, status="cancelled", limit=1) == ([last] if last in whole else []), user

NAMED_REVIEW = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_named" targetNamespace="http://example.com/bpm">
  <bpmn:process id="named_review" name="Named review" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:userTask id="review" name="Review" camunda:candidateUsers="eve">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_task_offered_to_an_approver_by_name_shows_its_instance_to_them_only(client, users):
    assert deploy(client, users["dora"], NAMED_REVIEW).status_code == 201
    offered = start(client, users["ivan"], key="named_review", business_key="NAMED-1")
    for user, expected in (("eve", [offered]), ("bob", []), ("alice", [])):
        response = client.get("/api/v1/process-instances", headers=users[user])
        assert response.status_code == 200, response.json
        assert [row["id"] for row in response.json] == expected, user
