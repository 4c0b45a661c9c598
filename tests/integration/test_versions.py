"""Version diff and migration of running instances from v1 to v2 (element ids match or they do not)."""

from __future__ import annotations

from conftest import bpmn_fixture, deploy

V1, V2 = bpmn_fixture("versioned_v1.bpmn"), bpmn_fixture("versioned_v2.bpmn")


def start(client, users, amount):
    response = client.post("/api/v1/process-definitions/versioned/instances", headers=users["ivan"],
                           json={"variables": {"amount": amount}})
    assert response.status_code == 201, response.json
    return response.json["id"]


def complete_open_task(client, users, instance_id, headers):
    [task] = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["admin"]).json["open_tasks"]
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=headers).status_code == 200
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=headers, json={"variables": {}})
    assert done.status_code == 200, done.json


def test_diff_names_added_removed_and_changed_elements(client, users):
    deploy(client, users["dora"], V1)
    deploy(client, users["dora"], V2)
    response = client.get("/api/v1/process-definitions/versioned/diff", headers=users["ivan"],
                          query_string={"from": 1, "to": 2})
    assert response.status_code == 200, response.json
    diff = response.json
    assert {e["id"] for e in diff["added"]} == {"wait", "director", "f4"}
    assert {e["id"] for e in diff["removed"]} == {"approve"}
    changed = {e["id"]: e["changes"] for e in diff["changed"]}
    assert changed["review"]["name"] == {"from": "Review", "to": "Review the request"}
    assert changed["review"]["candidateGroups"] == {"from": "team-leads", "to": "finance"}
    assert changed["f_big"]["condition"] == {"from": "${amount > 1000}", "to": "${amount > 5000}"}
    assert changed["f_small"]["target"] == {"from": "end", "to": "wait"}
    [wait] = [e for e in diff["added"] if e["id"] == "wait"]
    assert wait["timer"] == "timeDuration: P1D" and wait["type"] == "intermediateCatchEvent"
    missing = client.get("/api/v1/process-definitions/versioned/diff", headers=users["ivan"],
                         query_string={"from": 1, "to": 9})
    assert missing.status_code == 404


def test_dry_run_then_migration_moves_only_instances_whose_elements_exist(client, users):
    deploy(client, users["dora"], V1)
    at_review = start(client, users, 10)
    at_approve = start(client, users, 5000)
    complete_open_task(client, users, at_approve, users["alice"])  # now waits in 'approve', gone in v2
    deploy(client, users["dora"], V2)
    url = "/api/v1/process-definitions/versioned/migrations"
    dry = client.post(url, headers=users["dora"], json={"from_version": 1, "to_version": 2, "dry_run": True})
    assert dry.status_code == 200, dry.json
    outcomes = {o["instance_id"]: o for o in dry.json["instances"]}
    assert outcomes[at_review]["can_move"] is True and outcomes[at_review]["moved"] is False
    assert outcomes[at_approve]["can_move"] is False
    assert "active element 'approve' (READY) is missing" in outcomes[at_approve]["reasons"][0]

    moved = client.post(url, headers=users["dora"], json={"from_version": 1, "to_version": 2, "dry_run": False})
    outcomes = {o["instance_id"]: o for o in moved.json["instances"]}
    assert outcomes[at_review]["moved"] is True and outcomes[at_approve]["moved"] is False
    detail = client.get(f"/api/v1/process-instances/{at_review}", headers=users["admin"]).json
    assert detail["version"] == 2
    assert client.get(f"/api/v1/process-instances/{at_approve}", headers=users["admin"]).json["version"] == 1
    # the open task now follows v2's assignment, and v2's path (a timer after a small amount) is taken
    complete_open_task(client, users, at_review, users["bob"])
    history = client.get(f"/api/v1/process-instances/{at_review}/history", headers=users["admin"]).json
    assert any(h["event"] == "instance.migrated" for h in history)
    assert client.get(f"/api/v1/process-instances/{at_review}", headers=users["admin"]).json["status"] == "running"


def test_migration_needs_the_deploy_permission(client, users):
    deploy(client, users["dora"], V1)
    deploy(client, users["dora"], V2)
    body = {"from_version": 1, "to_version": 2}
    assert client.post("/api/v1/process-definitions/versioned/migrations", headers=users["ivan"],
                       json=body).status_code == 403


def test_a_start_runs_the_newest_version_or_the_one_named_and_a_missing_version_is_a_404(client, users):
    deploy(client, users["dora"], V1)
    deploy(client, users["dora"], V2)
    url = "/api/v1/process-definitions/versioned/instances"
    newest = client.post(url, headers=users["ivan"], json={"variables": {"amount": 10}})
    pinned = client.post(url, headers=users["ivan"], json={"variables": {"amount": 10}, "version": 1})
    assert (newest.status_code, newest.json["version"]) == (201, 2)
    assert (pinned.status_code, pinned.json["version"]) == (201, 1)
    missing = client.post(url, headers=users["ivan"], json={"variables": {"amount": 10}, "version": 9})
    assert missing.status_code == 404
    assert "version 9 of process definition 'versioned' not found" in missing.json["detail"]
    unknown = client.post("/api/v1/process-definitions/nowhere/instances", headers=users["ivan"], json={})
    assert unknown.status_code == 404 and "'nowhere'" in unknown.json["detail"]


def test_each_version_is_read_by_its_number_and_a_missing_one_is_a_404(client, users):
    deploy(client, users["dora"], V1)
    deploy(client, users["dora"], V2)
    first = client.get("/api/v1/process-definitions/versioned/versions/1", headers=users["ivan"])
    second = client.get("/api/v1/process-definitions/versioned/versions/2", headers=users["ivan"])
    assert (first.json["version"], second.json["version"]) == (1, 2)
    assert first.json["bpmn_xml"] != second.json["bpmn_xml"]
    assert client.get("/api/v1/process-definitions/versioned/versions/3", headers=users["ivan"]).status_code == 404
