"""Nothing lost, nothing repeated in effect: real API, worker, beat, PostgreSQL and RabbitMQ processes
while workers are killed, the broker stops, two schedulers run at once and everything restarts.

Receivers count distinct deliveries by the sender's dedupe key (email Message-ID, X-BPM-Delivery): delivery
is at-least-once on the wire and exactly-once in effect.
"""

from __future__ import annotations

import time

import pytest
import requests
from conftest import bpmn_fixture
from harness import PrivateDatabase, PrivateVhost, Stack, rabbitmqctl, require_rabbitmq, wait_until
from receivers import SmtpSink, WebhookReceiver

from bpm.services import definitions, identity

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

WAIT = 60  # seconds: the bound of every wait for an outcome
PEOPLE = {"ivan": (["integrator"], [], None), "alice": (["approver"], ["team-leads"], None),
          "lily": (["approver"], ["team-leads"], "lily@example.com"), "bob": (["approver"], ["finance"], None)}


@pytest.fixture(scope="module")
def receivers():
    smtp, webhook = SmtpSink().start(), WebhookReceiver(harness_secret()).start()
    yield smtp, webhook
    smtp.stop()
    webhook.stop()


def harness_secret() -> str:
    from harness import WEBHOOK_SECRET

    return WEBHOOK_SECRET


@pytest.fixture(scope="module")
def stack(receivers, tmp_path_factory):
    require_rabbitmq()
    smtp, webhook = receivers
    with PrivateDatabase() as database_url, PrivateVhost() as broker_url:
        stack = Stack(database_url, broker_url, smtp.port, webhook.url, tmp_path_factory.mktemp("stack"))
        stack.tokens = _people(stack)
        for name in ("expense_approval.bpmn", "delivery_after_timer.bpmn"):
            definitions.deploy(definitions.DeployBpmn(bpmn_fixture(name), name, "test"), stack.uow())
        try:
            stack.api()
            yield stack
        finally:
            stack.stop_all()


def _people(stack) -> dict[str, dict[str, str]]:
    tokens = {}
    for username, (roles, groups, email) in PEOPLE.items():
        identity.create_user(identity.CreateUser(username, username.title(), email, groups, roles), stack.uow())
        _, token = identity.issue_token(identity.IssueToken(username, "test"), stack.uow())
        tokens[username] = {"Authorization": f"Bearer {token}"}
    return tokens


@pytest.fixture
def run(stack, receivers):
    """A fresh round: receivers emptied, only outbox rows written from now on are checked."""
    for receiver in receivers:
        receiver.reset()
    stack.watermark = stack.sql("SELECT coalesce(max(id), 0) FROM outbox")[0][0]
    yield stack
    for process in [p for p in stack.processes if p.name != "api"]:
        process.stop()


# --- helpers -------------------------------------------------------------------------------------------------


def start(stack, key: str, business_key: str, variables: dict | None = None) -> str:
    response = requests.post(f"{stack.api_url}/api/v1/process-definitions/{key}/instances",
                             headers=stack.tokens["ivan"], timeout=30,
                             json={"business_key": business_key, "variables": variables or {}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def complete_first_task(stack, who: str, business_key: str) -> None:
    headers, api = stack.tokens[who], f"{stack.api_url}/api/v1"
    [task] = requests.get(f"{api}/tasks", headers=headers, params={"business_key": business_key},
                          timeout=30).json()["items"]
    assert requests.post(f"{api}/tasks/{task['id']}/claim", headers=headers, timeout=30).status_code == 200
    done = requests.post(f"{api}/tasks/{task['id']}/complete", headers=headers, json={"variables": {}},
                         timeout=30)
    assert done.status_code == 200, done.text


def new_outbox(stack) -> list:
    return stack.sql("SELECT id, kind, status FROM outbox WHERE id > :w ORDER BY id", w=stack.watermark)


def wait_delivered(stack, expected: int, what: str, timeout: float = WAIT) -> list:
    return wait_until(lambda: everything_delivered(stack, expected), timeout, what,
                      explain=lambda: [tuple(row) for row in new_outbox(stack)])


def everything_delivered(stack, expected: int):
    rows = new_outbox(stack)
    return rows if len(rows) >= expected and all(row.status == "delivered" for row in rows) else None


def assert_each_delivered_once_in_effect(stack, receivers, rows) -> None:
    smtp, webhook = receivers
    emails = {f"<bpm-delivery-{row.id}@example.com>" for row in rows if row.kind == "email"}
    hooks = {str(row.id) for row in rows if row.kind == "webhook"}
    wait_until(lambda: set(smtp.message_ids()) >= emails and webhook.distinct_deliveries() >= hooks, WAIT,
               "every email and webhook at the receivers")
    assert set(smtp.message_ids()) == emails  # every expected email, nothing unexpected
    assert webhook.distinct_deliveries() == hooks
    assert webhook.bad_signatures == 0


# --- the tests -----------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_delivery_loses_nothing_and_repeats_nothing_in_effect(run, receivers):
    _smtp, webhook = receivers
    webhook.delay = 0.3  # deliveries take a while, so the kill lands in the middle of them
    try:
        worker, _beat = run.worker("w1"), run.beat("beat1")
        for n in range(20):
            start(run, "expense_approval", f"KILL-{n}", {"amount": 10})
        wait_until(lambda: len(webhook.distinct_deliveries()) >= 4, WAIT, "the first webhook deliveries")
        worker.kill9()
        in_flight = [row for row in new_outbox(run) if row.status != "delivered"]
        assert in_flight, "the worker finished everything before it was killed: the test proves nothing"
        run.worker("w1-restarted")
        rows = wait_delivered(run, 40, "all 40 outbox messages delivered", WAIT)
    finally:
        webhook.delay = 0.0
    assert len(rows) == 40  # 20 tasks: one email (lily) and one webhook each
    assert_each_delivered_once_in_effect(run, receivers, rows)
    smtp, _ = receivers
    repeats = sum(webhook.deliveries.values()) - len(webhook.deliveries)
    repeats += sum(smtp.message_ids().values()) - len(smtp.message_ids())
    print(f"in flight at the kill: {len(in_flight)}; repeated on the wire and deduplicated: {repeats}")


def test_the_api_keeps_working_while_the_broker_is_down_and_everything_is_delivered_after(run, receivers):
    run.worker("w2")
    run.beat("beat2")
    for n in range(3):
        start(run, "expense_approval", f"OUT-{n}", {"amount": 5000})
    wait_delivered(run, 6, "the messages sent before the outage", WAIT)
    rabbitmqctl("stop_app")
    try:
        for n in range(3):
            complete_first_task(run, "alice", f"OUT-{n}")  # -> finance tasks (no email: one webhook each)
        for n in range(3, 8):
            start(run, "expense_approval", f"OUT-{n}", {"amount": 5000})
        time.sleep(2)
        waiting = [row for row in new_outbox(run) if row.status != "delivered"]
        assert len(waiting) >= 13, waiting  # written by the API with no broker, waiting in the outbox
    finally:
        rabbitmqctl("start_app")
    rows = wait_delivered(run, 19, "all 19 messages after the broker is back", 90)
    assert len(rows) == 19  # 3 + 5 new tasks x (email + webhook) and 3 finance tasks x webhook
    assert_each_delivered_once_in_effect(run, receivers, rows)


def _timers_service():
    from bpm.services import timers

    return getattr(timers, "fire_due_timers", None)


def _fired_per_instance(stack, instance_ids: list[str]) -> dict[str, int]:
    rows = stack.sql("SELECT instance_id, count(*) AS n FROM history WHERE event = 'timer.fired' "
                     "GROUP BY instance_id")
    counts = {row.instance_id: row.n for row in rows}
    return {instance_id: counts.get(instance_id, 0) for instance_id in instance_ids}


def _call_back_tasks(stack, instance_ids: list[str]) -> dict[str, int]:
    rows = stack.sql("SELECT instance_id, count(*) AS n FROM tasks WHERE element_id = 'call_back' "
                     "GROUP BY instance_id")
    counts = {row.instance_id: row.n for row in rows}
    return {instance_id: counts.get(instance_id, 0) for instance_id in instance_ids}


def test_two_schedulers_at_once_fire_each_due_timer_once(run, receivers):
    if _timers_service() is None:
        pytest.skip("bpm.services.timers.fire_due_timers is not available in this build")
    for name in ("w3a", "w3b"):
        run.worker(name)
    for name in ("beat3a", "beat3b"):
        run.beat(name)
    instances = [start(run, "delivery_after_timer", f"TWO-{n}") for n in range(10)]
    wait_until(lambda: all(_call_back_tasks(run, instances).values()), WAIT, "every timer to fire")
    time.sleep(3)  # give a second firing every chance to happen
    assert set(_fired_per_instance(run, instances).values()) == {1}
    assert set(_call_back_tasks(run, instances).values()) == {1}
    rows = wait_delivered(run, 20, "the call-back notifications", WAIT)
    assert_each_delivered_once_in_effect(run, receivers, rows)


def test_timers_still_fire_after_the_api_worker_and_beat_restart(run, receivers):
    if _timers_service() is None:
        pytest.skip("bpm.services.timers.fire_due_timers is not available in this build")
    instances = [start(run, "delivery_after_timer", f"RESTART-{n}") for n in range(5)]
    [api] = [p for p in run.processes if p.name == "api" and p.popen.poll() is None]
    api.stop()
    time.sleep(5)  # the 4-second timers come due while no process runs
    assert set(_call_back_tasks(run, instances).values()) == {0}
    run.api()
    run.worker("w4")
    run.beat("beat4")
    wait_until(lambda: all(_call_back_tasks(run, instances).values()), WAIT, "the overdue timers to fire")
    assert set(_fired_per_instance(run, instances).values()) == {1}
    described = requests.get(f"{run.api_url}/api/v1/process-instances/{instances[0]}",
                             headers=run.tokens["ivan"], timeout=30).json()
    assert [t["element_id"] for t in described["open_tasks"]] == ["call_back"]
    rows = wait_delivered(run, 10, "the call-back notifications", WAIT)
    assert_each_delivered_once_in_effect(run, receivers, rows)
