"""API hygiene: OpenAPI covers every route, errors are problem+json, validation names fields."""

from __future__ import annotations

import re

from conftest import bpmn_fixture, deploy


def test_openapi_documents_every_api_route(app, client):
    document = client.get("/api/v1/openapi.json").json
    documented = {re.sub(r"\{[^}]+\}", "{}", path) for path in document["paths"]}
    routes = {re.sub(r"<[^>]+>", "{}", rule.rule) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json"}
    assert routes - documented == set()
    assert "bearer" in document["components"]["securitySchemes"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["database"] == "ok"


def test_missing_and_bad_tokens_are_401_problems(client):
    missing = client.get("/api/v1/tasks")
    assert missing.status_code == 401 and missing.content_type == "application/problem+json"
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    bad = client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "unknown" in bad.json["detail"]


def test_roles_gate_deploy_and_start(client, users):
    data = bpmn_fixture("expense_approval.bpmn")
    assert deploy(client, users["alice"], data).status_code == 403
    assert deploy(client, users["nobody"], data).status_code == 403
    assert deploy(client, users["dora"], data).status_code == 201
    start = "/api/v1/process-definitions/expense_approval/instances"
    assert client.post(start, headers=users["nobody"], json={}).status_code == 403
    assert client.post(start, headers=users["ivan"], json={}).status_code == 201


def test_validation_errors_are_422_with_field_messages(client, users):
    deploy(client, users["dora"], bpmn_fixture("expense_approval.bpmn"))
    response = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                           json={"variables": "not-an-object", "version": 0})
    assert response.status_code == 422
    assert set(response.json["errors"]) >= {"variables", "version"}
    unknown = client.post("/api/v1/process-definitions/nope/instances", headers=users["ivan"], json={})
    assert unknown.status_code == 404 and "nope" in unknown.json["detail"]


def test_admin_manages_users_groups_and_tokens(client, users):
    created = client.post("/api/v1/users", headers=users["admin"],
                          json={"username": "lily", "roles": ["approver"], "groups": ["legal"]})
    assert created.status_code == 201 and created.json["groups"] == ["legal"]
    assert client.post("/api/v1/users", headers=users["dora"], json={"username": "x"}).status_code == 403
    duplicate = client.post("/api/v1/users", headers=users["admin"], json={"username": "lily"})
    assert duplicate.status_code == 409
    bad_role = client.post("/api/v1/users", headers=users["admin"], json={"username": "q", "roles": ["god"]})
    assert bad_role.status_code == 422 and "roles" in bad_role.json["errors"]
    issued = client.post("/api/v1/users/lily/tokens", headers=users["admin"], json={"name": "phone"})
    token = issued.json["token"]
    lily = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/tasks", headers=lily).status_code == 200
    listed = client.get("/api/v1/users/lily/tokens", headers=users["admin"]).json
    assert "token" not in listed[0] and listed[0]["prefix"] == token[:10]
    revoked = client.delete(f"/api/v1/users/lily/tokens/{issued.json['id']}", headers=users["admin"])
    assert revoked.status_code == 204
    assert client.get("/api/v1/tasks", headers=lily).status_code == 401
    groups = client.get("/api/v1/groups", headers=users["admin"]).json
    assert {"name": "legal", "display_name": "legal", "members": ["lily"]} in groups
