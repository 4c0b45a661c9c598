"""Scenario simulation: path, decisions, timers, SLA and variables in memory; saved scenarios gate deploys."""

from __future__ import annotations

import json

from conftest import bpmn_fixture, deploy

from api.cli import main as bpm_cli

EXPENSE = bpmn_fixture("expense_approval.bpmn")
V1, V2 = bpmn_fixture("versioned_v1.bpmn"), bpmn_fixture("versioned_v2.bpmn")
ORDERS = bpmn_fixture("order_messages.bpmn")


def simulate(client, headers, **body):
    return client.post("/api/v1/simulations", headers=headers, json=body)


def count_instances(client, users):
    return len(client.get("/api/v1/process-instances", headers=users["admin"]).json)


def test_simulation_explains_path_decisions_sla_and_variables_without_storing(client, users):
    scenario = {"variables": {"amount": 5000}, "steps": [
        {"task": "lead_review", "variables": {"lead_ok": True}}, {"advance": "P3D"},
        {"task": "finance_review"}, {"task": "director_approval", "variables": {"approved": True}}]}
    response = simulate(client, users["dora"], bpmn=EXPENSE.decode(), scenario=scenario)
    assert response.status_code == 200, response.json
    result = response.json
    assert result["ok"] is True and result["completed"] is True
    assert result["path"][0] == "start" and result["path"][-1] == "end"
    [decision] = result["decisions"]
    assert decision["gateway_id"] == "amount_check" and decision["taken"] == ["f_large"]
    assert decision["evaluations"][0]["values"] == {"amount": 5000}
    sla = {t["element_id"]: t["sla"] for t in result["tasks"]}
    assert sla["lead_review"] == "met"  # due P2D, completed at once
    assert result["variables"]["approved"] is True and result["variables"]["lead_ok"] is True
    assert count_instances(client, users) == 0
    assert client.get("/api/v1/process-definitions", headers=users["dora"]).json == []


def test_late_task_misses_its_sla_and_timers_fire_on_the_simulated_clock(client, users):
    deploy(client, users["dora"], V2)
    scenario = {"variables": {"amount": 10}, "steps": [{"advance": "P5D"}, {"task": "review"}, {"advance": "P2D"}]}
    result = simulate(client, users["dora"], process_key="versioned", scenario=scenario).json
    assert result["ok"] and result["completed"] and result["version"] == 1
    [review] = result["tasks"]
    assert review["sla"] == "no due date"
    [fired] = result["timers_fired"]
    assert fired["element_id"] == "wait" and fired["fired_at"] == fired["due_at"]
    expense = simulate(client, users["dora"], bpmn=EXPENSE.decode(),
                       scenario={"variables": {"amount": 5}, "steps": [{"advance": "P3D"}, {"task": "lead_review"}]})
    [late] = [t for t in expense.json["tasks"] if t["element_id"] == "lead_review"]
    assert late["sla"] == "missed"


def test_failing_step_names_the_step_and_what_was_open(client, users):
    scenario = {"variables": {"amount": 5}, "steps": [{"task": "finance_review"}]}
    result = simulate(client, users["dora"], bpmn=EXPENSE.decode(), scenario=scenario).json
    assert result["ok"] is False and result["failure"]["step"] == 1
    assert "task 'finance_review' is not open (open: lead_review)" in result["failure"]["message"]
    bad = simulate(client, users["dora"], bpmn="<not-bpmn", scenario={})
    assert bad.status_code == 422
    assert simulate(client, users["ivan"], bpmn=EXPENSE.decode()).status_code == 403


def test_messages_in_a_scenario(client, users):
    scenario = {"steps": [{"message": "payment_received", "variables": {"paid": 3}}, {"task": "ship"}]}
    result = simulate(client, users["dora"], bpmn=ORDERS.decode(), process_key="order_payment",
                      scenario=scenario).json
    assert result["ok"] and result["completed"] and result["variables"]["paid"] == 3


def test_saved_scenario_blocks_a_breaking_upload_unless_forced(client, users):
    deploy(client, users["dora"], V1)
    scenario = {"variables": {"amount": 2000}, "steps": [{"task": "review"}, {"task": "approve"}],
                "expect": {"completed": True}}
    saved = client.post("/api/v1/process-definitions/versioned/scenarios", headers=users["dora"],
                        json={"name": "big amount", "scenario": scenario})
    assert saved.status_code == 201, saved.json
    assert saved.json["result"]["ok"] is True
    listed = client.get("/api/v1/process-definitions/versioned/scenarios", headers=users["ivan"]).json
    assert [s["name"] for s in listed] == ["big amount"]

    blocked = deploy(client, users["dora"], V2)
    assert blocked.status_code == 422, blocked.json
    assert "scenario 'big amount'" in blocked.json["detail"] and "step 2" in blocked.json["detail"]
    assert len(client.get("/api/v1/process-definitions/versioned/versions", headers=users["dora"]).json) == 1
    assert deploy(client, users["dora"], V1).status_code == 201  # still passing: deploys

    from io import BytesIO
    forced = client.post("/api/v1/process-definitions?force=true", headers=users["dora"],
                         data={"file": (BytesIO(V2), "v2.bpmn")}, content_type="multipart/form-data")
    assert forced.status_code == 201, forced.json


def test_cli_simulate(tmp_path, capsys):
    bpmn = tmp_path / "expense.bpmn"
    bpmn.write_bytes(EXPENSE)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"variables": {"amount": 10}, "steps": [{"task": "lead_review"},
                                                                         {"task": "director_approval"}]}))
    assert bpm_cli(["simulate", str(bpmn), str(scenario), "--start", "2026-01-05T09:00:00+00:00"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["completed"] is True and result["path"][-1] == "end"
    scenario.write_text(json.dumps({"steps": [{"task": "nope"}]}))
    assert bpm_cli(["simulate", str(bpmn), str(scenario)]) == 1
