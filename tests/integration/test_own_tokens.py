"""Integrators manage their own API tokens: scopes, expiry, listing and revocation, never wider than the caller."""

from __future__ import annotations

from datetime import timedelta

from conftest import bpmn_fixture, deploy

from bpm.services import identity


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_user_issues_lists_and_revokes_their_own_token(client, users):
    issued = client.post("/api/v1/users/me/tokens", headers=users["ivan"],
                         json={"name": "crm sync", "scopes": ["start", "read"]})
    assert issued.status_code == 201, issued.json
    token, token_id = issued.json["token"], issued.json["id"]

    listed = client.get("/api/v1/users/me/tokens", headers=users["ivan"]).json
    assert [(t["name"], t["scopes"]) for t in listed if t["id"] == token_id] == [("crm sync", ["read", "start"])]
    assert all("token" not in t for t in listed), "a listed token must never show its secret"
    assert client.get("/api/v1/process-definitions", headers=_bearer(token)).status_code == 200

    assert client.delete(f"/api/v1/users/me/tokens/{token_id}", headers=users["ivan"]).status_code == 204
    identity.clear_actor_cache()
    assert client.get("/api/v1/process-definitions", headers=_bearer(token)).status_code == 401


def test_a_scoped_token_does_only_what_its_scopes_allow(client, users):
    token = client.post("/api/v1/users/me/tokens", headers=users["dora"], json={"scopes": ["read"]}).json["token"]
    refused = deploy(client, _bearer(token), bpmn_fixture("expense_approval.bpmn"))
    assert refused.status_code == 403
    assert deploy(client, users["dora"], bpmn_fixture("expense_approval.bpmn")).status_code == 201


def test_a_scoped_token_cannot_issue_a_wider_token(client, users):
    narrow = client.post("/api/v1/users/me/tokens", headers=users["ivan"], json={"scopes": ["read"]}).json["token"]
    wider = client.post("/api/v1/users/me/tokens", headers=_bearer(narrow), json={"scopes": ["read", "start"]})
    assert wider.status_code == 403
    assert "start" in wider.json["detail"]
    unrestricted = client.post("/api/v1/users/me/tokens", headers=_bearer(narrow), json={})
    assert unrestricted.status_code == 403
    same = client.post("/api/v1/users/me/tokens", headers=_bearer(narrow), json={"scopes": ["read"]})
    assert same.status_code == 201


def test_a_scoped_token_cannot_revoke_an_unrestricted_token(client, users):
    full = client.post("/api/v1/users/me/tokens", headers=users["ivan"], json={"name": "full"}).json
    narrow = client.post("/api/v1/users/me/tokens", headers=users["ivan"], json={"scopes": ["read"]}).json["token"]
    refused = client.delete(f"/api/v1/users/me/tokens/{full['id']}", headers=_bearer(narrow))
    assert refused.status_code == 403
    assert client.get("/api/v1/process-definitions", headers=_bearer(full["token"])).status_code == 200


def test_nobody_revokes_another_users_token(client, users):
    other = client.post("/api/v1/users/me/tokens", headers=users["alice"], json={"name": "alice"}).json
    assert client.delete(f"/api/v1/users/me/tokens/{other['id']}", headers=users["ivan"]).status_code == 404
    assert client.get("/api/v1/process-definitions", headers=_bearer(other["token"])).status_code == 200


def test_an_expired_own_token_is_refused(client, users, clock):
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    token = client.post("/api/v1/users/me/tokens", headers=users["ivan"],
                        json={"scopes": ["read"], "expires_at": expires}).json["token"]
    assert client.get("/api/v1/process-definitions", headers=_bearer(token)).status_code == 200
    clock.advance(timedelta(hours=2))
    assert client.get("/api/v1/process-definitions", headers=_bearer(token)).status_code == 401
