"""Rules over the API: read the shipped defaults, save versions (admin only, validated, optimistic), try them on
data, and see a running process use a changed rule without redeploying the BPMN."""

from __future__ import annotations

from shipped_kit import create_staff, deploy_shipped, only_task, post

CHEAP_SALES_MANAGER = {"outputs": {
    "sales_manager": {"<=": [{"var": "amount"}, 50000]},
    "technical_director": {">": [{"var": "amount"}, 50000]},
    "sales_director": False, "general_manager": False, "vice_president": False, "countersign": False}}


def put(client, headers, name, body):
    return client.put(f"/api/v1/rules/{name}", headers=headers, json=body)


def test_defaults_are_listed_and_readable(client, users):
    listed = client.get("/api/v1/rules", headers=users["ivan"]).json
    assert {r["name"] for r in listed} >= {"quote_routing", "quote_countersigners", "complaint_routing",
                                           "lead_assignment"}
    rule = client.get("/api/v1/rules/quote_routing", headers=users["alice"]).json
    assert (rule["version"], rule["source"]) == (0, "shipped")
    assert client.get("/api/v1/rules/nope", headers=users["alice"]).status_code == 404
    assert client.get("/api/v1/rules", headers=users["nobody"]).status_code == 403


def test_put_versions_validates_and_guards_concurrent_edits(client, users):
    assert put(client, users["dora"], "quote_routing", {"document": CHEAP_SALES_MANAGER}).status_code == 403
    bad = put(client, users["admin"], "quote_routing", {"document": {"method": ["", "__class__"]}})
    assert bad.status_code == 422 and "not allowed" in bad.json["errors"]["document"][0]
    assert put(client, users["admin"], "Bad Name", {"document": 1}).status_code == 422
    first = put(client, users["admin"], "quote_routing", {"document": CHEAP_SALES_MANAGER, "expected_version": 0})
    assert first.status_code == 200 and (first.json["version"], first.json["source"]) == (1, "stored")
    assert first.json["description"].startswith("Which approval steps")
    stale = put(client, users["admin"], "quote_routing", {"document": CHEAP_SALES_MANAGER, "expected_version": 0})
    assert stale.status_code == 409 and stale.json["current_version"] == 1
    put(client, users["admin"], "quote_routing", {"document": CHEAP_SALES_MANAGER, "description": "v2"})
    versions = client.get("/api/v1/rules/quote_routing/versions", headers=users["ivan"]).json
    assert [(v["version"], v["updated_by"]) for v in versions] == [(1, "admin"), (2, "admin")]
    tried = client.post("/api/v1/rules/quote_routing/evaluate", headers=users["ivan"],
                        json={"data": {"amount": 60000, "discount": 0}}).json
    assert tried["rule"] == "quote_routing v2" and tried["result"]["technical_director"] is True


def test_changed_rule_applies_without_redeploying(client, users, context):
    deploy_shipped(client, users["dora"], ("quote_approval",))
    staff = create_staff(context)
    customer = post(client, staff["amy"], "/api/v1/customers", {"name": "Acme"})["id"]

    def submitted_to():
        quote = post(client, staff["amy"], "/api/v1/quotes", {"customer_id": customer, "amount": 100000})
        post(client, staff["amy"], f"/api/v1/quotes/{quote['id']}/submit")
        for who in ("sam", "tina"):
            tasks = client.get("/api/v1/tasks", headers=staff[who], query_string={"business_key": quote["number"]})
            if tasks.json["items"]:
                return only_task(client, staff[who], quote["number"])["element_id"]
        raise AssertionError("nobody got the quote")

    assert submitted_to() == "sales_manager"
    assert put(client, users["admin"], "quote_routing", {"document": CHEAP_SALES_MANAGER}).status_code == 200
    assert submitted_to() == "technical_director"
