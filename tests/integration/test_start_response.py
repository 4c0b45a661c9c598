"""The start response describes the instance exactly as a later GET does.

The start command answers from the workflow and the task rows it holds when that is exact, and reads the instance
back otherwise; either way the 201 body must equal `GET /process-instances/{id}` right after it.
"""

from __future__ import annotations

from approvals_kit import CHAIN, deployed
from conftest import bpmn_fixture, deploy

EXPENSE = bpmn_fixture("expense_approval.bpmn")
TIMER_BOUNDARY = bpmn_fixture("timer_boundary.bpmn")


def started_and_read_back(client, headers, key, variables, **extra_headers) -> tuple[dict, dict]:
    started = client.post(f"/api/v1/process-definitions/{key}/instances", headers={**headers, **extra_headers},
                          json={"business_key": "B-1", "variables": variables})
    assert started.status_code in (200, 201), started.json
    read = client.get(f"/api/v1/process-instances/{started.json['id']}", headers=headers)
    assert read.status_code == 200, read.json
    return started.json, read.json


def test_start_response_of_a_user_task_process_equals_the_instance_read_back(client, users):
    assert deploy(client, users["dora"], EXPENSE).status_code == 201
    started, read = started_and_read_back(client, users["ivan"], "expense_approval", {"amount": 5000})
    assert started == read
    assert [t["element_id"] for t in started["open_tasks"]] == ["lead_review"]
    assert started["variables"] == {"amount": 5000} and started["path"] == ["start"]


def test_start_response_shows_the_deputy_a_commit_time_handler_handed_the_first_task_to(client, users):
    deployed(client, users, CHAIN)
    put = client.put("/api/v1/users/me/substitute", headers=users["eve"],
                     json={"deputy": "carol", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-02-01T00:00:00Z"})
    assert put.status_code == 200, put.json
    started, read = started_and_read_back(client, users["eve"], "approval_chain", {"initiator": "eve"})
    assert started == read
    [task] = started["open_tasks"]
    assert task["assignee"] == "carol"


def test_start_response_lists_the_timers_the_start_planned(client, users):
    assert deploy(client, users["dora"], TIMER_BOUNDARY).status_code == 201
    started, read = started_and_read_back(client, users["ivan"], "timer_boundary", {})
    assert started == read
    assert sorted(t["element_id"] for t in started["timers"]) == ["deadline", "nudge"]


def test_idempotent_repeat_answers_with_the_instance_as_it_is_now(client, users):
    assert deploy(client, users["dora"], EXPENSE).status_code == 201
    first, _ = started_and_read_back(client, users["ivan"], "expense_approval", {"amount": 5000},
                                     **{"Idempotency-Key": "k-1"})
    [task] = first["open_tasks"]
    claimed = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=users["alice"])
    assert claimed.status_code == 200, claimed.json
    again, read = started_and_read_back(client, users["ivan"], "expense_approval", {"amount": 5000},
                                        **{"Idempotency-Key": "k-1"})
    assert again == read and again["open_tasks"][0]["assignee"] == "alice"


STRAIGHT_THROUGH = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="straight" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="route" default="f3"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="route" />
    <bpmn:sequenceFlow id="f2" sourceRef="route" targetRef="big">
      <bpmn:conditionExpression>${amount &gt; 1000}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="route" targetRef="small" />
    <bpmn:endEvent id="big"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="small"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def test_start_response_of_an_instance_that_ends_at_once_equals_the_instance_read_back(client, users):
    deployed = deploy(client, users["dora"], STRAIGHT_THROUGH)
    assert deployed.status_code == 201, deployed.json
    started, read = started_and_read_back(client, users["ivan"], "straight", {"amount": 5000})
    assert started == read
    assert started["status"] == "completed" and started["open_tasks"] == []
    assert started["path"] == ["start", "route", "big"] and started["variables"] == {"amount": 5000}
