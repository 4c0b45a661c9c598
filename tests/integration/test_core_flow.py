"""The core promise, through the public API: deploy -> start -> inbox -> claim -> complete -> history."""

from __future__ import annotations

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
