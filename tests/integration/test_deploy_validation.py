"""Bad and hostile uploads: a clear 4xx naming element, type and line; nothing stored, nothing executed."""

from __future__ import annotations

import pytest
from conftest import bpmn_fixture, deploy

EXPENSE = bpmn_fixture("expense_approval.bpmn")
CONDITION = b"${amount &gt; 1000}"


def definitions_count(client, headers) -> int:
    return len(client.get("/api/v1/process-definitions", headers=headers).json)


def assert_rejected(response, status=422, rule=None, element_id=None):
    assert response.status_code == status, response.json
    assert response.content_type == "application/problem+json"
    if rule or element_id:
        problems = response.json["problems"]
        assert any((rule is None or p["rule"] == rule) and (element_id is None or p["element_id"] == element_id)
                   for p in problems), problems
    return response.json


@pytest.mark.parametrize("condition", [
    b"__import__('os').system('touch /tmp/bpm-pwned')",
    b"().__class__.__base__.__subclasses__()",
    b"open('/etc/passwd').read()",
    b"exec('import os')",
    b"getattr(amount, '__class__')",
    b"[c for c in ().__class__.__mro__]",
    b"(lambda: 1)()",
])
def test_hostile_conditions_are_rejected_at_deploy_and_never_run(client, users, condition, tmp_path):
    hostile = EXPENSE.replace(CONDITION, condition.replace(b"'", b"&apos;"))
    body = assert_rejected(deploy(client, users["dora"], hostile), rule="expression", element_id="f_large")
    assert body["problems"][0]["line"] > 0
    assert definitions_count(client, users["dora"]) == 0
    assert not (tmp_path / "bpm-pwned").exists()


def test_condition_failing_at_run_time_changes_nothing(client, users):
    deploy(client, users["dora"], EXPENSE.replace(CONDITION, b"${amount / 0 &gt; 1}"))
    started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                          json={"variables": {"amount": 5}})
    assert started.status_code == 201
    [task] = client.get("/api/v1/tasks", headers=users["alice"]).json["items"]
    failed = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=users["alice"], json={})
    assert failed.status_code == 422
    assert "amount_check" in failed.json["detail"] or "Over 1,000" in failed.json["detail"]
    still = client.get(f"/api/v1/tasks/{task['id']}", headers=users["alice"]).json
    assert still["status"] == "open"


def test_script_task_is_refused_unless_restricted_mode(client, users):
    script = EXPENSE.replace(
        b'<bpmn:exclusiveGateway id="amount_check"',
        b'<bpmn:scriptTask id="evil" scriptFormat="python"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>'
        b'<bpmn:exclusiveGateway id="amount_check"')
    assert_rejected(deploy(client, users["dora"], script), rule="script-task", element_id="evil")


def test_xxe_document_is_rejected_without_resolving(client, users):
    xxe = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>')
    body = assert_rejected(deploy(client, users["dora"], xxe), rule="xml-doctype")
    assert "root:" not in str(body)


def test_billion_laughs_is_rejected(client, users):
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY l0 "ha">{entities}]>'
            f'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&l9;'
            f'</bpmn:definitions>').encode()
    assert_rejected(deploy(client, users["dora"], bomb), rule="xml-doctype")


def test_upload_over_the_limit_is_413(client, users, settings):
    padding = b"<!--" + b"x" * (settings.max_upload_bytes + 10) + b"-->"
    # sent as a raw XML body: the test client spools large multipart bodies to a temp file it never closes
    response = client.post("/api/v1/process-definitions", data=EXPENSE + padding,
                           headers={**users["dora"], "Content-Type": "application/xml"})
    body = assert_rejected(response, status=413)
    assert body["problems"][0]["rule"] == "payload-too-large"


def test_malformed_xml_names_the_line(client, users):
    broken = EXPENSE.replace(b"</bpmn:userTask>", b"</bpmn:userTaskX>", 1)
    body = assert_rejected(deploy(client, users["dora"], broken), rule="xml-syntax")
    assert body["problems"][0]["line"] == 15


def test_flows_without_id_are_rejected_not_silently_dropped(client, users):
    broken = EXPENSE.replace(b'<bpmn:sequenceFlow id="f_director_end" ', b"<bpmn:sequenceFlow ")
    assert_rejected(deploy(client, users["dora"], broken), rule="flow-missing-id")


def test_dangling_target_names_the_flow(client, users):
    broken = EXPENSE.replace(b'targetRef="end"', b'targetRef="nowhere"')
    assert_rejected(deploy(client, users["dora"], broken), rule="flow-dangling-target", element_id="f_director_end")


def test_xsd_violation_is_reported_with_line(client, users):
    broken = EXPENSE.replace(b"<bpmn:incoming>f_start_lead</bpmn:incoming>",
                             b"<bpmn:incoming>f_start_lead</bpmn:incoming><bpmn:bogus/>")
    body = assert_rejected(deploy(client, users["dora"], broken))
    assert body["problems"][0]["line"] is not None


def test_untranslatable_camunda_expression_is_rejected(client, users):
    broken = EXPENSE.replace(CONDITION, b"${execution.getVariable(&apos;amount&apos;) &gt; 5}")
    body = assert_rejected(deploy(client, users["dora"], broken), rule="expression", element_id="f_large")
    assert "getVariable" in body["detail"]


def test_bare_iso_timer_literal_and_camunda_condition_are_translated(client, users):
    timer = EXPENSE.replace(
        b"</bpmn:userTask>\n    <bpmn:exclusiveGateway",
        b"</bpmn:userTask>\n    <bpmn:boundaryEvent id=\"remind\" attachedToRef=\"lead_review\" "
        b"cancelActivity=\"false\"><bpmn:outgoing>f_remind</bpmn:outgoing><bpmn:timerEventDefinition>"
        b"<bpmn:timeDuration>PT4H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        b"<bpmn:endEvent id=\"reminded\"><bpmn:incoming>f_remind</bpmn:incoming></bpmn:endEvent>"
        b"<bpmn:sequenceFlow id=\"f_remind\" sourceRef=\"remind\" targetRef=\"reminded\"/>\n"
        b"    <bpmn:exclusiveGateway", 1)
    assert deploy(client, users["dora"], timer).status_code == 201
    started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                          json={"variables": {"amount": 1}})
    assert started.status_code == 201, started.json


def test_no_file_is_a_field_error(client, users):
    response = client.post("/api/v1/process-definitions", headers=users["dora"], data={},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "file" in response.json["errors"]


def test_raw_xml_body_is_accepted(client, users):
    response = client.post("/api/v1/process-definitions", headers={**users["dora"],
                                                                    "Content-Type": "application/xml"}, data=EXPENSE)
    assert response.status_code == 201


def test_every_problem_is_reported_in_one_response(client, users):
    broken = (EXPENSE.replace(b'<bpmn:sequenceFlow id="f_director_end" ', b"<bpmn:sequenceFlow ")
              .replace(b'<bpmn:userTask id="finance_review" name="Finance review" camunda:candidateGroups="finance"',
                       b'<bpmn:serviceTask id="shell" activiti:type="shell" xmlns:activiti="http://activiti.org/bpmn">'
                       b'<bpmn:incoming>f_large</bpmn:incoming></bpmn:serviceTask>'
                       b'<bpmn:userTask id="finance_review" name="Finance review" camunda:candidateGroups="finance"')
              .replace(b'<bpmn:endEvent id="end" name="Expense decided">',
                       b'<bpmn:intermediateCatchEvent id="alert" name="Alert"><bpmn:signalEventDefinition />'
                       b'</bpmn:intermediateCatchEvent><bpmn:endEvent id="end" name="Expense decided">'))
    body = assert_rejected(deploy(client, users["dora"], broken))
    rules = {p["rule"] for p in body["problems"]}
    assert {"flow-missing-id", "signal-without-ref", "unsupported-task-type"} <= rules, body["problems"]
    assert body["detail"].startswith(f"process.bpmn: {len(body['problems'])} problems: (1) ")
    assert "from 'director_approval' to 'end' has no id" in body["detail"]
    assert "intermediateCatchEvent 'alert' (\"Alert\") has a signalEventDefinition without signalRef" in body["detail"]
    assert "activiti:type=\"shell\" runs an operating-system command" in body["detail"]


REVIEWERS_LOOP = (b'<bpmn:outgoing>f_lead_gateway</bpmn:outgoing>'
                  b'<bpmn:multiInstanceLoopCharacteristics isSequential="SEQUENTIAL">'
                  b'<bpmn:loopDataInputRef>reviewers</bpmn:loopDataInputRef>'
                  b'<bpmn:inputDataItem id="reviewer" name="reviewer" /></bpmn:multiInstanceLoopCharacteristics>')


@pytest.mark.parametrize("sequential", [True, False])
def test_standard_multi_instance_loop_data_runs_one_task_per_item(client, users, sequential):
    loop = REVIEWERS_LOOP.replace(b"SEQUENTIAL", b"true" if sequential else b"false")
    assert deploy(client, users["dora"], EXPENSE.replace(b"<bpmn:outgoing>f_lead_gateway</bpmn:outgoing>",
                                                         loop)).status_code == 201
    started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                          json={"variables": {"amount": 5, "reviewers": ["ann", "ben"]}})
    assert started.status_code == 201, started.json
    seen = []
    for _ in range(2):
        tasks = client.get("/api/v1/tasks", headers=users["alice"]).json["items"]
        assert len(tasks) == (1 if sequential else 2 - len(seen))
        task = tasks[0]
        seen.append(client.get(f"/api/v1/tasks/{task['id']}", headers=users["alice"]).json["data"]["reviewer"])
        done = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=users["alice"], json={})
        assert done.status_code == 200, done.json
    assert seen == ["ann", "ben"] if sequential else sorted(seen) == ["ann", "ben"]
    detail = client.get(f"/api/v1/process-instances/{started.json['id']}", headers=users["admin"]).json
    assert [t["element_id"] for t in detail["open_tasks"]] == ["director_approval"]
    assert "reviewer" not in detail["variables"]  # each instance's item stays local to it


def test_multi_instance_without_input_names_what_is_missing(client, users):
    looped = EXPENSE.replace(b"<bpmn:outgoing>f_lead_gateway</bpmn:outgoing>",
                             b'<bpmn:outgoing>f_lead_gateway</bpmn:outgoing>'
                             b'<bpmn:multiInstanceLoopCharacteristics isSequential="true" />')
    body = assert_rejected(deploy(client, users["dora"], looped), element_id="lead_review")
    assert ("a multi-instance task needs loopCardinality, loopDataInputRef (standard BPMN) or camunda:collection; "
            "it has none of them") in body["detail"]


def test_engine_problems_of_every_process_are_reported(client, users):
    looped = EXPENSE.replace(b"<bpmn:outgoing>f_lead_gateway</bpmn:outgoing>",
                             b'<bpmn:outgoing>f_lead_gateway</bpmn:outgoing>'
                             b'<bpmn:multiInstanceLoopCharacteristics isSequential="true" />')
    second = (b'<bpmn:process id="second" isExecutable="true"><bpmn:startEvent id="s2"><bpmn:outgoing>g1'
              b'</bpmn:outgoing></bpmn:startEvent><bpmn:userTask id="lead_copy"><bpmn:incoming>g1</bpmn:incoming>'
              b'<bpmn:outgoing>g2</bpmn:outgoing><bpmn:multiInstanceLoopCharacteristics isSequential="true" />'
              b'</bpmn:userTask><bpmn:endEvent id="e2"><bpmn:incoming>g2</bpmn:incoming></bpmn:endEvent>'
              b'<bpmn:sequenceFlow id="g1" sourceRef="s2" targetRef="lead_copy" />'
              b'<bpmn:sequenceFlow id="g2" sourceRef="lead_copy" targetRef="e2" /></bpmn:process>')
    two = looped.replace(b"</bpmn:process>", b"</bpmn:process>" + second, 1)
    body = assert_rejected(deploy(client, users["dora"], two))
    assert {p["element_id"] for p in body["problems"]} == {"lead_review", "lead_copy"}, body["problems"]
    assert body["detail"].startswith("process.bpmn: 2 problems: (1) ")


SCRIPTED = EXPENSE.replace(
    b'<bpmn:sequenceFlow id="f_start_lead" sourceRef="start" targetRef="lead_review" />',
    b'<bpmn:sequenceFlow id="f_start_lead" sourceRef="start" targetRef="calc" />'
    b'<bpmn:scriptTask id="calc" name="Add the fee" scriptFormat="python"><bpmn:script>SCRIPT</bpmn:script>'
    b'</bpmn:scriptTask><bpmn:sequenceFlow id="f_calc" sourceRef="calc" targetRef="lead_review" />')


class TestRestrictedScripts:
    @pytest.fixture
    def settings(self, database_url, tmp_path):
        from bpm.config import Settings

        return Settings(database_url=database_url, var_dir=tmp_path, max_upload_bytes=2_000_000,
                        allow_scripts="restricted")

    def test_refused_statement_is_rejected_at_deploy_naming_task_and_line(self, client, users):
        script = SCRIPTED.replace(b"SCRIPT", b"total = amount\ntotal **= 2\nimport os")
        body = assert_rejected(deploy(client, users["dora"], script), rule="script", element_id="calc")
        assert "scriptTask 'calc' (\"Add the fee\"): line 2: augmented assignment '**=' is not allowed" \
            in body["detail"]
        assert definitions_count(client, users["dora"]) == 0

    def test_other_script_languages_are_rejected(self, client, users):
        script = SCRIPTED.replace(b'scriptFormat="python"', b'scriptFormat="groovy"').replace(b"SCRIPT", b"x = 1")
        body = assert_rejected(deploy(client, users["dora"], script), rule="script", element_id="calc")
        assert "scriptFormat 'groovy' is not supported" in body["detail"]

    def test_augmented_assignment_runs_and_print_goes_to_the_history(self, client, users, capsys):
        script = SCRIPTED.replace(b"SCRIPT", b'total = amount\ntotal += 10\nprint(f"total with fee: {total}")')
        assert deploy(client, users["dora"], script).status_code == 201
        started = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                              json={"variables": {"amount": 5}})
        assert started.status_code == 201, started.json
        detail = client.get(f"/api/v1/process-instances/{started.json['id']}", headers=users["admin"]).json
        assert detail["variables"]["total"] == 15
        history = client.get(f"/api/v1/process-instances/{started.json['id']}/history", headers=users["admin"]).json
        [printed] = [h for h in history if h["event"] == "script.output"]
        assert (printed["element_id"], printed["data"]) == ("calc", {"text": "total with fee: 15"})
        assert "total with fee" not in capsys.readouterr().out
