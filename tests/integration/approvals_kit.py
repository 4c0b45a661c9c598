"""Helpers shared by the approval API tests: deploy a fixture, start it, find and act on tasks."""

from __future__ import annotations

from conftest import bpmn_fixture, deploy

CHAIN = bpmn_fixture("approval_chain.bpmn")
COUNTERSIGN = bpmn_fixture("countersign.bpmn")


def deployed(client, users, data: bytes = CHAIN) -> None:
    response = deploy(client, users["dora"], data)
    assert response.status_code == 201, response.json


def start(client, headers, key="approval_chain", business_key="REQ-1", **variables) -> str:
    response = client.post(f"/api/v1/process-definitions/{key}/instances", headers=headers,
                           json={"business_key": business_key, "variables": variables})
    assert response.status_code == 201, response.json
    return response.json["id"]


def open_tasks(client, headers, **params) -> list[dict]:
    response = client.get("/api/v1/tasks", headers=headers, query_string=params)
    assert response.status_code == 200, response.json
    return response.json["items"]


def only_task(client, headers, **params) -> dict:
    tasks = open_tasks(client, headers, **params)
    assert len(tasks) == 1, tasks
    return tasks[0]


def act(client, headers, task_id: str, operation: str, **body):
    return client.post(f"/api/v1/tasks/{task_id}/{operation}", headers=headers, json=body)


def history(client, headers, instance_id: str) -> list[dict]:
    response = client.get(f"/api/v1/process-instances/{instance_id}/history", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def instance(client, headers, instance_id: str) -> dict:
    response = client.get(f"/api/v1/process-instances/{instance_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def submitted(client, users, initiator="eve", business_key="REQ-1") -> tuple[str, dict]:
    """Start the approval chain as `initiator`, submit it, and return (instance id, the review task)."""
    instance_id = start(client, users[initiator], initiator=initiator, business_key=business_key)
    submit = only_task(client, users[initiator], business_key=business_key)
    assert act(client, users[initiator], submit["id"], "approve", opinion="please").status_code == 200
    return instance_id, only_task(client, users["alice"], business_key=business_key)


def add_user(client, users, username, roles=("approver",), groups=(), supervisor=None) -> dict:
    created = client.post("/api/v1/users", headers=users["admin"],
                          json={"username": username, "roles": list(roles), "groups": list(groups),
                                "supervisor": supervisor})
    assert created.status_code == 201, created.json
    token = client.post(f"/api/v1/users/{username}/tokens", headers=users["admin"], json={"name": "t"})
    assert token.status_code == 201, token.json
    return {"Authorization": f"Bearer {token.json['token']}"}
