"""The BPMN conformance corpus (../shared/conformance/bpmn) through the public API, under a scripted driver.

Every file is uploaded. Files marked `yes`/`default` in MANIFEST.tsv must deploy and run to completion: the
driver completes each open user task with plausible variables, delivers each awaited message through
POST /api/v1/messages and fast-forwards each timer (manual clock + the timer scheduler). The others must be
rejected with a 4xx naming the element or the rule, or stay bounded; a 5xx is always a failure. Where an
executable file cannot run here, EXPECTED states the precise rejection and why.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import deploy
from sqlalchemy import select

from bpm.adapters.orm import Timer
from bpm.adapters.orm_integrations import MessageSubscription
from bpm.clock import utc
from bpm.config import Settings
from bpm.services import timers

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "bpmn"
MAX_ROUNDS = 40


def manifest() -> list[dict[str, str]]:
    if not (CORPUS / "MANIFEST.tsv").exists():
        return []
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


ROWS = manifest()
EXECUTABLE = ("yes", "default")

# file -> (outcome, words the problem detail must contain). Outcomes: completed; rejected (4xx at upload);
# failed (a step refused with a 4xx naming the element); incomplete (the driver had nothing left to do).
EXPECTED: dict[str, tuple[str, str]] = {
    "miwg--A.1.0.bpmn": ("rejected", "no executable process"),
    "miwg--A.3.0.bpmn": ("rejected", "no executable process"),
    "miwg--A.4.0.bpmn": ("rejected", "no executable process"),
    "miwg--B.2.0.bpmn": ("rejected", "condition is empty"),
    "miwg--C.1.0.bpmn": ("rejected", "serviceTask 'archiveInvoice' (\"Archive Invoice\") cannot run on this server: "
                         "activiti:delegateExpression calls the Java delegate"),
    "miwg--C.3.0.bpmn": ("rejected", "(\"Perform emergency repair\") needs exactly one start event, found 0"),
    "miwg--C.6.0.bpmn": ("rejected", "(\"Offer Approved\") waits for a message but has no messageRef"),
    "miwg--C.9.0.bpmn": ("rejected", "conditionExpression '= some risk in riskLevels satisfies risk = \"red\"'"),
    "miwg--C.9.1.bpmn": ("rejected", "camunda:type=\"external\" expects a Camunda external-task worker"),
    "miwg--C.9.2.bpmn": ("rejected", "conditionExpression '=fraud': invalid syntax"),
    "camunda-examples--invoiceApproval.bpmn": ("completed", ""),
    "camunda-examples--invoicePayment.bpmn": ("completed", ""),
    "camunda-examples--parse-bpmn-process.bpmn": ("rejected", "evaluates the JUEL method expression"),
    "camunda-examples--order-handling.bpmn": ("rejected", "worker (topic 'invoiceCreator')"),
    "camunda-examples--loan-granting.bpmn": ("rejected", "external-task worker (topic 'creditScoreChecker')"),
    "camunda-examples--message_start_process.bpmn": ("completed", ""),
    "camunda-platform--invoice.v2.bpmn": ("rejected", "camunda:class calls the Java class"),
    "camunda-platform--reviewInvoice.bpmn": ("completed", ""),
    "camunda-platform--BoundaryTimerNonInterruptingEventTest.testTimerOnEmbeddedSubprocess.bpmn20.xml":
        ("completed", ""),
    "camunda-platform--StartTimerEventTest.testCycleWithLimitStartTimerEvent.bpmn20.xml":
        ("rejected", "receiveTask 'receive' waits for a message but has no messageRef"),
    "camunda-platform--EventBasedGatewayTest.testCatchSignalAndMessageAndTimer.bpmn20.xml":
        ("rejected", "sequenceFlow at line 12 from 'timerEvent' to 'task1' has no id"),
    "camunda-platform--EscalationEventTest.testThrowEscalationEventFromEmbeddedSubprocess.bpmn20.xml":
        ("rejected", "sequenceFlow at line 13 from 'start' to 'subProcess' has no id"),
    "camunda-platform--SignalEventTest.testNonInterruptingSignalWithSubProcess.bpmn20.xml": ("completed", ""),
    "camunda-platform--InvalidProcessWithSignalNoRef.bpmn20.xml":
        ("rejected", "intermediateCatchEvent 'signalEvent' (\"Alert\") has a signalEventDefinition without signalRef"),
    "camunda-platform--TestWarDeploymentWithBrokenBpmnXml.testXmlInvalid.bpmn20.xml":
        ("rejected", "malformed XML: Opening and ending tag mismatch"),
    "spiffworkflow--No-Start-Event.bpmn20.xml": ("rejected", "has no start event"),
    "spiffworkflow--Subprocess-Not-Found.bpmn20.xml": ("rejected", "no executable process"),
    "spiffworkflow--inclusive_gateway.bpmn": ("completed", ""),
    "spiffworkflow--timer-non-interrupt-boundary.bpmn": ("completed", ""),
    "spiffworkflow--transaction.bpmn": ("completed", ""),
    "spiffworkflow--noninterrupting-MessageBoundary.bpmn": ("completed", ""),
    "spiff-arena--multiinstance_user_task_sequential.bpmn": ("completed", ""),
    "spiff-arena--dangerous-scripts-read_etc_passwd.bpmn":
        ("rejected", "scriptTask 'read_etc_passwd' (\"Read /etc/passwd\"): line 1: function 'open' is not allowed"),
    "spiff-arena--xml_with_entity-invoice.bpmn": ("rejected", "DOCTYPE declarations are not allowed"),
    "bpmn-js-examples--pizza-collaboration.bpmn": ("rejected", "timeDate is empty"),
    "bpmn-js-examples--kitchen-sink.bpmn": ("rejected", "has no end event"),
    "flowable--reviewSalesLead.bpmn20.xml": ("completed", ""),
    "flowable--VacationRequest.bpmn20.xml": ("completed", ""),
    "flowable--ShellTaskTest.testEchoShellLinux.bpmn20.xml":
        ("rejected", "serviceTask 'shellEcho' cannot run on this server: activiti:type=\"shell\" runs an "
                     "operating-system command, which is never allowed"),
    "flowable--WatchDogAgendaTest-endlessloop.bpmn20.xml": ("rejected", "process 'endlessloop' has no end event"),
}

# Variables a human would enter in each file's forms (conditions read them).
TASK_VARIABLES = {
    "camunda-examples--invoiceApproval.bpmn": {"approved": True},
    "camunda-platform--reviewInvoice.bpmn": {"clarified": "true"},
    "flowable--reviewSalesLead.bpmn20.xml": {"notEnoughInformation": "false", "notEnoughProfit": "false"},
    "spiffworkflow--timer-non-interrupt-boundary.bpmn": {"work_done": "Yes"},
    "spiffworkflow--noninterrupting-MessageBoundary.bpmn": {"work_done": "Yes", "flag_task": "Yes"},
    "flowable--VacationRequest.bpmn20.xml": {"vacationApproved": "true", "resendRequest": "false"},
    "spiffworkflow--inclusive_gateway.bpmn": {"u": 1, "v": 0, "w": 1},
    "spiffworkflow--transaction.bpmn": {"value": "x", "quantity": 1},
    "spiff-arena--multiinstance_user_task_sequential.bpmn": {"val": "checked"},
}
START_VARIABLES = {
    "camunda-platform--reviewInvoice.bpmn": {"reviewer": "admin"},
    "flowable--reviewSalesLead.bpmn20.xml": {"initiator": "admin"},
    "flowable--VacationRequest.bpmn20.xml": {"employeeName": "Kermit", "numberOfDays": 3},
}


@pytest.fixture
def database_url(sqlite_url):
    """The corpus runs on the SQLite tier: the engine path is the same on both, and it takes a minute."""
    return sqlite_url


@pytest.fixture
def settings(database_url, tmp_path):
    """The corpus runs with the restricted script mode on: Python-script files are part of it."""
    return Settings(database_url=database_url, var_dir=tmp_path, max_upload_bytes=2_000_000,
                    allow_scripts="restricted")


def _id(row):
    return row["file"]


if not ROWS:
    pytest.skip(f"CONFORMANCE CORPUS MISSING: {CORPUS}/MANIFEST.tsv is not there", allow_module_level=True)


# --- the scripted driver -----------------------------------------------------------------------------------------


class RunFailed(Exception):
    """A step was refused with a 4xx: the instance cannot go on (the detail names the element)."""


def drive(client, users, context, instance_id: str, file: str) -> str:
    """Push one instance forward until it completes or nothing the driver knows how to do is left."""
    admin = users["admin"]
    for _ in range(MAX_ROUNDS):
        detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=admin).json
        if detail["status"] != "running":
            return detail["status"]
        if _fire_next_timer(context, instance_id):
            continue  # timers first: a boundary timer that a quick worker would beat still gets its turn
        if detail["open_tasks"]:
            for task in detail["open_tasks"]:
                _complete(client, admin, task, TASK_VARIABLES.get(file, {}))
            continue
        if not _deliver_messages(client, users, context, instance_id):
            return f"stuck after {detail['path'][-1] if detail['path'] else 'start'}"
    return "too many rounds"


def _complete(client, headers, task, variables) -> None:
    response = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=headers, json={"variables": variables})
    assert response.status_code < 500, response.json
    if response.status_code != 200:
        raise RunFailed(f"completing {task['element_id']}: {response.json['detail']}")


def _deliver_messages(client, users, context, instance_id: str) -> bool:
    with context.uow() as uow:
        names = sorted({s.message_name for s in uow.session.scalars(
            select(MessageSubscription).where(MessageSubscription.instance_id == instance_id))})
    for name in names[:1]:
        response = client.post("/api/v1/messages", headers=users["ivan"],
                               json={"name": name, "instance_id": instance_id})
        assert response.status_code == 200, response.json
        return True
    return False


def _fire_next_timer(context, instance_id: str) -> bool:
    with context.uow() as uow:
        due = uow.session.scalar(select(Timer.due_at).where(Timer.instance_id == instance_id,
                                                            Timer.status == "waiting").order_by(Timer.due_at))
    if due is None:
        return False
    if utc(due) > context.clock.now():
        context.clock.set(utc(due))
    return timers.fire_due_timers(context.uow) > 0


def start_all(client, users, definitions: list[dict], file: str) -> list[str]:
    """Start each deployed process (a process with a message start event waits in its start event)."""
    started = []
    for definition in definitions:
        response = client.post(f"/api/v1/process-definitions/{definition['key']}/instances", headers=users["admin"],
                               json={"variables": START_VARIABLES.get(file, {})})
        assert response.status_code < 500, response.json
        if response.status_code != 201:
            raise RunFailed(f"starting {definition['key']}: {response.json['detail']}")
        started.append(response.json["id"])
    return started


def run_file(client, users, context, row) -> tuple[str, str]:
    """('rejected', detail) | ('completed', '') | ('failed', detail) | ('incomplete', why)."""
    file = row["file"]
    response = deploy(client, users["admin"], (CORPUS / file).read_bytes(), file)
    assert response.status_code < 500, f"{file}: server error on deploy: {response.data[:500]}"
    if response.status_code != 201:
        assert 400 <= response.status_code < 500
        return "rejected", response.json.get("detail", "")
    try:
        started = start_all(client, users, response.json["definitions"], file)
        outcomes = [drive(client, users, context, instance_id, file) for instance_id in started]
    except RunFailed as error:
        return "failed", str(error)
    if all(outcome == "completed" for outcome in outcomes):
        return "completed", ""
    return "incomplete", ", ".join(outcomes)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_corpus_file(row, client, users, context):
    outcome, detail = run_file(client, users, context, row)
    executable = row["executable"].split(" (")[0]
    print(f"CONFORMANCE\t{row['file']}\t{executable}\t{outcome}\t{detail}")  # the corpus table: pytest -s
    expected_outcome, words = EXPECTED[row["file"]]
    assert (outcome, words in detail) == (expected_outcome, True), detail


def test_every_corpus_file_has_an_expectation():
    assert sorted(EXPECTED) == sorted(row["file"] for row in ROWS)


def test_non_executable_rows_never_complete():
    """invalid-by-design, security-negative, edge and `no` rows are refused (at upload or at the bad step)."""
    for row in ROWS:
        if not row["executable"].startswith(EXECUTABLE) and not row["executable"].startswith("partial"):
            assert EXPECTED[row["file"]][0] in ("rejected", "failed"), row["file"]
