"""Form definitions over the API (the designer's form editor saves through it): list, read, save, checks, roles."""

from __future__ import annotations

import copy


def _shipped(client, users, key="quote_approve"):
    response = client.get(f"/api/v1/forms/{key}", headers=users["dora"])
    assert response.status_code == 200, response.json
    return response.json


def test_designer_lists_reads_and_saves_a_form(client, users):
    listed = client.get("/api/v1/forms", headers=users["dora"])
    assert listed.status_code == 200
    summary = {form["key"]: form for form in listed.json}["quote_approve"]
    assert summary["source"] == "shipped" and summary["fields"] >= 2
    form = _shipped(client, users)
    assert form["source"] == "shipped" and form["schema"]["id"] == "quote_approve"
    assert client.get("/api/v1/forms/quote_approve.form", headers=users["dora"]).json["key"] == "quote_approve"

    schema = copy.deepcopy(form["schema"])
    opinion = next(c for c in schema["components"] if c.get("key") == "opinion")
    opinion["label"] = "Sales manager's opinion"
    saved = client.put("/api/v1/forms/quote_approve", headers=users["dora"], json={"schema": schema})
    assert saved.status_code == 200, saved.json
    assert saved.json["source"] == "saved"
    again = _shipped(client, users)
    assert again["source"] == "saved"
    assert "Sales manager's opinion" in str(again["schema"])
    assert {f["key"]: f["source"] for f in client.get("/api/v1/forms", headers=users["admin"]).json}[
        "quote_approve"] == "saved"


def test_a_new_form_is_created_under_its_key(client, users):
    schema = {"type": "default", "id": "travel", "components": [
        {"type": "textfield", "key": "destination", "label": "Destination", "validate": {"required": True}},
        {"type": "dynamiclist", "path": "legs", "components": [{"type": "textfield", "key": "destination"}]}]}
    created = client.put("/api/v1/forms/travel_request", headers=users["admin"], json={"schema": schema})
    assert created.status_code == 200, created.json
    assert created.json["fields"] == 2
    assert _shipped(client, users, "travel_request")["schema"] == schema


def test_invalid_forms_are_refused_with_each_problem_named(client, users):
    url = "/api/v1/forms/broken"
    for schema, where in [
        ({}, "components"),
        ({"components": []}, "components"),
        ({"type": "default", "components": [{"key": "a"}]}, "components[0]"),
        ({"components": [{"type": "textfield", "key": "a"}, {"type": "number", "key": "a"}]}, "components[1].key"),
        ({"components": [{"type": "textfield", "key": "not a name"}]}, "components[0].key"),
        ({"type": "wizard", "components": [{"type": "textfield", "key": "a"}]}, "type"),
        ({"components": [{"type": "number", "key": "n", "validate": {"min": "ten"}}]}, "components[0].validate.min"),
        ({"components": [{"type": "textfield", "key": "t", "validate": {"pattern": "("}}]},
         "components[0].validate.pattern"),
        ({"components": [{"type": "textfield", "key": "t", "validate": "required"}]}, "components[0].validate"),
    ]:
        response = client.put(url, headers=users["dora"], json={"schema": schema})
        assert response.status_code == 422, (schema, response.json)
        assert where in response.json["errors"], (schema, response.json)
    assert client.get(url, headers=users["dora"]).status_code == 404  # nothing was stored


def test_only_designers_and_admins_use_forms(client, users):
    schema = _shipped(client, users)["schema"]
    for user in ("alice", "ivan", "nobody"):
        assert client.get("/api/v1/forms", headers=users[user]).status_code == 403, user
        assert client.get("/api/v1/forms/quote_approve", headers=users[user]).status_code == 403, user
        refused = client.put("/api/v1/forms/quote_approve", headers=users[user], json={"schema": schema})
        assert refused.status_code == 403, user
    assert client.get("/api/v1/forms").status_code == 401
    assert _shipped(client, users)["source"] == "shipped"


def test_a_key_never_reaches_outside_the_form_store(client, users):
    schema = {"components": [{"type": "textfield", "key": "a"}]}
    for key in ("..hidden", "-dash", "a b"):
        refused = client.put(f"/api/v1/forms/{key}", headers=users["dora"], json={"schema": schema})
        assert refused.status_code == 422 and "key" in refused.json["errors"], key
        assert client.get(f"/api/v1/forms/{key}", headers=users["dora"]).status_code == 404
    assert client.get("/api/v1/forms/%2E%2E%2Fsecret", headers=users["dora"]).status_code == 404


TRIP_BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
             id="defs" targetNamespace="http://example.com/trip">
  <process id="trip_report" name="Trip report" isExecutable="true">
    <startEvent id="start" />
    <sequenceFlow id="f1" sourceRef="start" targetRef="report" />
    <userTask id="report" name="Write the trip report" camunda:assignee="alice"
              camunda:formKey="camunda-forms:deployment:trip_report.form" />
    <sequenceFlow id="f2" sourceRef="report" targetRef="end" />
    <endEvent id="end" />
  </process>
</definitions>
"""


def test_a_saved_form_is_what_tasks_show_and_are_checked_against(client, users):
    from conftest import deploy

    first = {"type": "default", "id": "trip_report", "components": [
        {"type": "textfield", "key": "summary", "label": "Summary"}]}
    assert client.put("/api/v1/forms/trip_report", headers=users["dora"], json={"schema": first}).status_code == 200
    assert deploy(client, users["dora"], TRIP_BPMN).status_code == 201
    started = client.post("/api/v1/process-definitions/trip_report/instances", headers=users["ivan"],
                          json={"business_key": "TRIP-1"})
    assert started.status_code == 201, started.json
    task_id = client.get("/api/v1/tasks?business_key=TRIP-1", headers=users["alice"]).json["items"][0]["id"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=users["alice"]).json["form"] == first

    second = {"type": "default", "id": "trip_report", "components": [
        {"type": "textfield", "key": "summary", "label": "Summary"},
        {"type": "number", "key": "kilometres", "label": "Kilometres", "validate": {"required": True, "min": 0}}]}
    saved = client.put("/api/v1/forms/trip_report", headers=users["dora"], json={"schema": second})
    assert saved.json["version"] == 2
    assert client.get(f"/api/v1/tasks/{task_id}", headers=users["alice"]).json["form"] == second
    refused = client.post(f"/api/v1/tasks/{task_id}/complete", headers=users["alice"],
                          json={"variables": {"summary": "fine"}})
    assert refused.status_code == 422 and "kilometres" in refused.json["errors"], refused.json
    done = client.post(f"/api/v1/tasks/{task_id}/complete", headers=users["alice"],
                       json={"variables": {"summary": "fine", "kilometres": 120}})
    assert done.status_code == 200, done.json
