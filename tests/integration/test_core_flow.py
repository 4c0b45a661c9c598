"""The core promise, through the public API: deploy -> start -> inbox -> claim -> complete -> history."""

from __future__ import annotations

import pytest
from approvals_kit import instance
from conftest import bpmn_fixture, deploy

EXPENSE = bpmn_fixture("expense_approval.bpmn")


def start(client, headers, variables, business_key="EXP-1", key="expense_approval", **extra):
    return client.post(f"/api/v1/process-definitions/{key}/instances", headers={**headers, **extra},
                       json={"business_key": business_key, "variables": variables})


def inbox(client, headers, **params):
    response = client.get("/api/v1/tasks", headers=headers, query_string=params)
    assert response.status_code == 200, response.json
    return response.json["items"]


def work_single_task(client, headers, variables=None):
    [task] = inbox(client, headers)
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=headers).status_code == 200
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=headers, json={"variables": variables or {}})
    assert done.status_code == 200, done.json
    return task


def test_three_step_approval_runs_to_completion_with_explained_decision(client, users):
    deployed = deploy(client, users["dora"], EXPENSE)
    assert deployed.status_code == 201, deployed.json
    assert [(d["key"], d["version"]) for d in deployed.json["definitions"]] == [("expense_approval", 1)]

    started = start(client, users["ivan"], {"amount": 5000})
    assert started.status_code == 201, started.json
    instance_id = started.json["id"]
    assert started.json["status"] == "running"
    assert [t["element_id"] for t in started.json["open_tasks"]] == ["lead_review"]

    assert inbox(client, users["bob"]) == []  # finance has nothing yet
    lead = work_single_task(client, users["alice"], {"lead_ok": True})
    assert lead["candidate_groups"] == ["team-leads"]
    assert lead["due_at"].startswith("2026-01-07T09:00")  # camunda:dueDate="P2D" from the clock's now
    finance = work_single_task(client, users["bob"])
    assert finance["priority"] == 70
    work_single_task(client, users["carol"])

    instance = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["ivan"]).json
    assert instance["status"] == "completed"
    assert instance["variables"]["amount"] == 5000 and instance["variables"]["lead_ok"] is True
    assert instance["path"][-1] == "end"

    history = client.get(f"/api/v1/process-instances/{instance_id}/history", headers=users["ivan"]).json
    completed = [(h["element_id"], h["actor"]) for h in history if h["event"] == "task.completed"]
    assert completed == [("lead_review", "alice"), ("finance_review", "bob"), ("director_approval", "carol")]
    [decision] = [h for h in history if h["event"] == "gateway.decision"]
    assert decision["element_id"] == "amount_check"
    [evaluation] = decision["data"]["evaluations"]
    assert evaluation["source"] == "${amount > 1000}"
    assert evaluation["values"] == {"amount": 5000} and evaluation["result"] is True
    assert decision["data"]["taken"] == ["f_large"]
    assert history[0]["event"] == "instance.started" and history[0]["actor"] == "ivan"
    assert history[-1]["event"] == "instance.completed"
    assert "task.cancelled" not in {h["event"] for h in history}
    done = client.get(f"/api/v1/tasks/{lead['id']}", headers=users["alice"]).json
    assert done["status"] == "completed" and done["completed_by"] == "alice"


def test_small_amount_takes_the_default_flow_and_says_why(client, users):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users["ivan"], {"amount": 200}).json["id"]
    work_single_task(client, users["alice"])
    [task] = inbox(client, users["carol"])
    assert task["element_id"] == "director_approval"
    history = client.get(f"/api/v1/process-instances/{instance_id}/history", headers=users["ivan"]).json
    [decision] = [h for h in history if h["event"] == "gateway.decision"]
    assert decision["data"]["evaluations"][0]["result"] is False
    assert decision["data"]["taken"] == ["f_small"]
    assert "default" in decision["data"]["reason"]


def test_running_instances_stay_on_their_version(client, users):
    deploy(client, users["dora"], EXPENSE)
    old = start(client, users["ivan"], {"amount": 5000}).json
    renamed = EXPENSE.replace(b'name="Team lead review"', b'name="Lead check v2"')
    assert deploy(client, users["dora"], renamed).json["definitions"][0]["version"] == 2
    new = start(client, users["ivan"], {"amount": 5000}, business_key="EXP-2").json
    assert old["version"] == 1 and new["version"] == 2
    names = {t["instance_id"]: t["name"] for t in inbox(client, users["alice"])}
    assert names == {old["id"]: "Team lead review", new["id"]: "Lead check v2"}
    versions = client.get("/api/v1/process-definitions/expense_approval/versions", headers=users["ivan"]).json
    assert [v["version"] for v in versions] == [1, 2]


def test_instance_row_holds_no_spec(client, users, context):
    from bpm.adapters.orm import ProcessInstance

    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users["ivan"], {"amount": 5000}).json["id"]
    uow = context.uow()
    with uow:
        state = uow.session.get(ProcessInstance, instance_id).state_json
    assert '"task_specs"' not in state
    assert len(state.encode()) < 5000


def test_cancel_withdraws_open_tasks(client, users):
    deploy(client, users["dora"], EXPENSE)
    instance_id = start(client, users["ivan"], {"amount": 5000}).json["id"]
    cancelled = client.post(f"/api/v1/process-instances/{instance_id}/cancel", headers=users["ivan"],
                            json={"reason": "customer withdrew"})
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert inbox(client, users["alice"]) == []
    again = client.post(f"/api/v1/process-instances/{instance_id}/cancel", headers=users["ivan"], json={})
    assert again.status_code == 409
    history = client.get(f"/api/v1/process-instances/{instance_id}/history", headers=users["ivan"]).json
    assert {"task.cancelled", "instance.cancelled"} <= {h["event"] for h in history}


def test_instance_list_filters(client, users):
    deploy(client, users["dora"], EXPENSE)
    first = start(client, users["ivan"], {"amount": 1}, business_key="A").json["id"]
    start(client, users["ivan"], {"amount": 1}, business_key="B")
    listed = client.get("/api/v1/process-instances", headers=users["ivan"], query_string={"business_key": "A"})
    assert [i["id"] for i in listed.json] == [first]
    running = client.get("/api/v1/process-instances", headers=users["ivan"],
                         query_string={"status": "running", "key": "expense_approval"})
    assert len(running.json) == 2
    assert client.get("/api/v1/process-instances", headers=users["ivan"],
                      query_string={"status": "bogus"}).status_code == 422


@pytest.fixture
def projection_reads(monkeypatch):
    """The instance ids for which a step read the projection's existing rows again (`_existing_rows`)."""
    from bpm.services import projection

    seen: list[str] = []
    read = projection._existing_rows

    def counted(uow, instance_id):
        seen.append(instance_id)
        return read(uow, instance_id)

    monkeypatch.setattr(projection, "_existing_rows", counted)
    return seen


def test_other_instances_open_tasks_do_not_make_a_completion_read_the_projection_again(
        client, users, projection_reads):
    """The completion's load tells whether the instance has anything open besides the task; another instance's
    open task is not the instance's, so the step compares with what the load already holds."""
    deploy(client, users["dora"], EXPENSE)
    first = start(client, users["ivan"], {"amount": 5000}, business_key="EXP-1").json
    second = start(client, users["ivan"], {"amount": 5000}, business_key="EXP-2").json
    task_id = first["open_tasks"][0]["id"]
    done = client.post(f"/api/v1/tasks/{task_id}/complete", headers=users["alice"], json={"variables": {}})
    assert done.status_code == 200, done.json
    assert projection_reads == []
    assert [t["element_id"] for t in instance(client, users["ivan"], first["id"])["open_tasks"]] == ["finance_review"]
    assert [t["element_id"] for t in instance(client, users["ivan"], second["id"])["open_tasks"]] == ["lead_review"]


PARALLEL_CHECKS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_parallel" targetNamespace="http://example.com/bpm">
  <bpmn:process id="parallel_checks" name="Parallel checks" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork" />
    <bpmn:parallelGateway id="fork"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="legal" />
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="credit" />
    <bpmn:userTask id="legal" name="Legal check" camunda:candidateGroups="team-leads">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="credit" name="Credit check" camunda:candidateGroups="finance">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f4" sourceRef="legal" targetRef="join" />
    <bpmn:sequenceFlow id="f5" sourceRef="credit" targetRef="join" />
    <bpmn:parallelGateway id="join"><bpmn:incoming>f4</bpmn:incoming><bpmn:incoming>f5</bpmn:incoming>
      <bpmn:outgoing>f6</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def test_completing_one_of_two_parallel_tasks_keeps_the_other_open_once(client, users, projection_reads):
    """The instance has another open task: the step reads the projection's rows and keeps that task as it is
    (taking the completed task for the only one would add the other again)."""
    assert deploy(client, users["dora"], PARALLEL_CHECKS, "parallel.bpmn").status_code == 201
    started = start(client, users["ivan"], {}, business_key="P-1", key="parallel_checks").json
    tasks = {t["element_id"]: t["id"] for t in started["open_tasks"]}
    assert set(tasks) == {"legal", "credit"}
    done = client.post(f"/api/v1/tasks/{tasks['legal']}/complete", headers=users["alice"], json={"variables": {}})
    assert done.status_code == 200, done.json
    assert projection_reads == [started["id"]]
    remaining = instance(client, users["ivan"], started["id"])["open_tasks"]
    assert [(t["element_id"], t["id"]) for t in remaining] == [("credit", tasks["credit"])]
    last = client.post(f"/api/v1/tasks/{tasks['credit']}/complete", headers=users["bob"], json={"variables": {}})
    assert last.status_code == 200, last.json
    assert instance(client, users["ivan"], started["id"])["status"] == "completed"
