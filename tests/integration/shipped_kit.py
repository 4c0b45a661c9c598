"""Helpers for the shipped-process tests: deploy the files in processes/, staff in the right groups, the inbox."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, deploy

from bpm.services import identity

PROCESSES = REPO / "processes"
SHIPPED = ("quote_approval", "complaint_handling", "lead_follow_up", "dormant_customer")

# username -> groups (every one is an approver)
STAFF = {
    "amy": ["account-managers"],
    "sam": ["sales-managers"],
    "tina": ["technical-directors"],
    "sid": ["sales-directors"],
    "gina": ["general-managers"],
    "vic": ["vice-presidents"],
    "fay": ["finance"],
    "leo": ["legal"],
    "fred": ["front-line-service"],
    "sue": ["service-supervisors"],
    "ed": ["engineers-product"],
    "dan": ["engineers-delivery"],
    "dora_d": ["service-directors"],
    "east1": ["sales-east"],
    "east2": ["sales-east"],
    "east3": ["sales-east"],
    "kay": ["sales-key-accounts"],
}
DISPLAY = {"sam": "王经理", "tina": "李技术总监", "sid": "Sid Sales", "gina": "张总经理", "vic": "Vic VP",
           "fay": "陈财务", "leo": "Leo Legal", "amy": "Amy 周"}


def deploy_shipped(client, headers, names=SHIPPED) -> None:
    for name in names:
        response = deploy(client, headers, (PROCESSES / f"{name}.bpmn").read_bytes(), f"{name}.bpmn")
        assert response.status_code == 201, response.json


def create_staff(context, supervisors: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    headers = {}
    for username, groups in STAFF.items():
        identity.create_user(identity.CreateUser(username, DISPLAY.get(username, username.title()),
                                                 f"{username}@example.com", groups, ["approver"],
                                                 (supervisors or {}).get(username)), context.uow())
        _, token = identity.issue_token(identity.IssueToken(username, "test"), context.uow())
        headers[username] = {"Authorization": f"Bearer {token}"}
    return headers


def inbox(client, headers, **params) -> list[dict]:
    response = client.get("/api/v1/tasks", headers=headers, query_string=params)
    assert response.status_code == 200, response.json
    return response.json["items"]


def only_task(client, headers, business_key: str) -> dict:
    tasks = inbox(client, headers, business_key=business_key)
    assert len(tasks) == 1, [t["element_id"] for t in tasks]
    return tasks[0]


def complete(client, headers, task: dict, variables: dict | None = None, expected: int = 200):
    response = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=headers,
                           json={"variables": variables or {}})
    assert response.status_code == expected, response.json
    return response


def post(client, headers, url: str, body: dict | None = None, expected: int = 201) -> dict:
    response = client.post(url, headers=headers, json=body or {})
    assert response.status_code == expected, response.json
    return response.json


def get(client, headers, url: str, expected: int = 200) -> dict:
    response = client.get(url, headers=headers)
    assert response.status_code == expected, response.json
    return response.json


def path_exists(path: str) -> bool:
    return Path(path).is_file()
