"""Records over the API: create, read, update, list with filters; 404 / 409 / 422; a record shows its
processes and open tasks."""

from __future__ import annotations

import pytest
from shipped_kit import create_staff, deploy_shipped, get, post

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def staff(context):
    return create_staff(context)


def test_customer_crud_filters_and_detail(client, staff, users):
    amy = staff["amy"]
    created = post(client, amy, "/api/v1/customers", {"name": "北京华夏机械", "industry": "machinery",
                                                      "region": "north", "tier": "gold",
                                                      "key_contact_birthday": "1975-03-08"})
    assert created["owner"] == "amy" and created["key_contact_birthday"] == "1975-03-08"
    post(client, amy, "/api/v1/customers", {"name": "Other", "region": "east", "owner": "sam"})
    assert [c["name"] for c in get(client, amy, "/api/v1/customers?region=north")] == ["北京华夏机械"]
    assert [c["name"] for c in get(client, amy, "/api/v1/customers?q=华夏")] == ["北京华夏机械"]
    assert [c["name"] for c in get(client, amy, "/api/v1/customers?owner=sam")] == ["Other"]
    page = get(client, amy, f"/api/v1/customers?limit=1&after={created['id']}")
    assert [c["name"] for c in page] == ["Other"]
    changed = client.patch(f"/api/v1/customers/{created['id']}", headers=amy, json={"tier": "strategic"})
    assert changed.status_code == 200 and changed.json["tier"] == "strategic"
    contact = post(client, amy, "/api/v1/contacts", {"customer_id": created["id"], "name": "王总",
                                                     "role": "decision_maker", "email": "wang@example.com"})
    post(client, amy, "/api/v1/interactions", {"kind": "visit", "notes": "factory tour", "customer_id": created["id"]})
    detail = get(client, amy, f"/api/v1/customers/{created['id']}")
    assert [c["id"] for c in detail["contacts"]] == [contact["id"]]
    assert detail["interactions"][0]["notes"] == "factory tour" and detail["last_interaction_at"] is not None
    assert detail["processes"] == [] and detail["open_tasks"] == []
    assert get(client, amy, "/api/v1/contacts?role=decision_maker")[0]["name"] == "王总"


@SQLITE_ONLY
@pytest.mark.parametrize(("url", "body", "fields"), [
    ("/api/v1/customers", {}, {"name"}),
    ("/api/v1/customers", {"name": "x", "tier": "diamond"}, {"tier"}),
    ("/api/v1/contacts", {"customer_id": 999, "name": "x", "role": "decision_maker"}, {"customer_id"}),
    ("/api/v1/contacts", {"customer_id": 1, "name": "x", "role": "boss"}, {"role"}),
    ("/api/v1/interactions", {"kind": "fax", "customer_id": 1}, {"kind"}),
    ("/api/v1/interactions", {"kind": "call"}, {"customer_id"}),
    ("/api/v1/quotes", {"customer_id": 999, "amount": 5}, {"customer_id"}),
    ("/api/v1/quotes", {"customer_id": 1, "amount": 5, "discount": 101}, {"discount"}),
    ("/api/v1/quotes", {"customer_id": 1, "amount": 5,
                        "line_items": [{"product": "p", "quantity": 1, "unit_price": 10}]}, {"amount"}),
    ("/api/v1/tickets", {"customer_id": 1, "subject": "s", "priority": "urgent"}, {"priority"}),
    ("/api/v1/leads", {"region": "east"}, {"name"}),
])
def test_invalid_input_is_422_naming_the_field(client, staff, url, body, fields):
    post(client, staff["amy"], "/api/v1/customers", {"name": "Acme"})
    response = client.post(url, headers=staff["amy"], json=body)
    assert response.status_code == 422, response.json
    assert {key.split(".")[-1] for key in response.json["errors"]} >= fields


@SQLITE_ONLY
@pytest.mark.parametrize("url", ["/api/v1/customers/999", "/api/v1/contacts/999", "/api/v1/quotes/999",
                                 "/api/v1/tickets/999", "/api/v1/leads/999", "/api/v1/quotes/999/pdf"])
def test_unknown_records_are_404(client, staff, url):
    assert client.get(url, headers=staff["amy"]).status_code == 404


def test_permissions(client, staff, users):
    assert client.get("/api/v1/customers", headers=users["nobody"]).status_code == 403
    assert client.post("/api/v1/customers", headers=users["nobody"], json={"name": "x"}).status_code == 403
    assert client.get("/api/v1/customers").status_code == 401


@SQLITE_ONLY
def test_quote_numbers_amounts_and_linked_process(client, staff, users):
    deploy_shipped(client, users["dora"], ("quote_approval",))
    customer = post(client, staff["amy"], "/api/v1/customers", {"name": "Acme"})["id"]
    first = post(client, staff["amy"], "/api/v1/quotes", {
        "customer_id": customer, "line_items": [{"product": "pump", "quantity": 3, "unit_price": 1500.5}]})
    second = post(client, staff["amy"], "/api/v1/quotes", {"customer_id": customer, "amount": 10})
    assert (first["number"], second["number"]) == ("Q-2026-0001", "Q-2026-0002")
    assert first["amount"] == 4501.5 and first["status"] == "draft"
    patched = client.patch(f"/api/v1/quotes/{first['id']}", headers=staff["amy"],
                           json={"line_items": [{"product": "pump", "quantity": 2, "unit_price": 100}]})
    assert patched.json["amount"] == 200
    post(client, staff["amy"], f"/api/v1/quotes/{first['id']}/submit")
    detail = get(client, staff["amy"], f"/api/v1/quotes/{first['id']}")
    assert detail["status"] == "submitted" and detail["customer"]["name"] == "Acme"
    [process] = detail["processes"]
    assert process["process_key"] == "quote_approval" and process["status"] == "running"
    assert [t["element_id"] for t in detail["open_tasks"]] == ["sales_manager"]
    assert [q["number"] for q in get(client, staff["amy"], "/api/v1/quotes?status=draft")] == ["Q-2026-0002"]
    assert client.patch(f"/api/v1/quotes/{first['id']}", headers=staff["amy"],
                        json={"notes": "late change"}).status_code == 409
