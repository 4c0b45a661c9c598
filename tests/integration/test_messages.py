"""POST /api/v1/messages: correlate by business key, instance id or variables; start by message; buffer."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from conftest import bpmn_fixture, deploy

ORDERS = bpmn_fixture("order_messages.bpmn")


@pytest.fixture
def deployed(client, users):
    response = deploy(client, users["dora"], ORDERS)
    assert response.status_code == 201, response.json
    return response


def start_order(client, users, business_key, variables=None):
    response = client.post("/api/v1/process-definitions/order_payment/instances", headers=users["ivan"],
                           json={"business_key": business_key, "variables": variables or {}})
    assert response.status_code == 201, response.json
    return response.json["id"]


def send(client, headers, **body):
    return client.post("/api/v1/messages", headers=headers, json=body)


def instance(client, users, instance_id):
    return client.get(f"/api/v1/process-instances/{instance_id}", headers=users["admin"]).json


def test_message_by_business_key_resumes_only_that_instance(client, users, deployed):
    first, second = start_order(client, users, "ORD-1"), start_order(client, users, "ORD-2")
    response = send(client, users["ivan"], name="payment_received", business_key="ORD-2",
                    variables={"paid": 120.5})
    assert response.status_code == 200, response.json
    assert response.json == {"status": "correlated", "resumed": [second], "started": [], "buffered_id": None}
    resumed = instance(client, users, second)
    assert [t["element_id"] for t in resumed["open_tasks"]] == ["ship"]
    assert resumed["variables"]["paid"] == 120.5 and "__message_payload" not in resumed["variables"]
    assert instance(client, users, first)["open_tasks"] == []
    again = send(client, users["ivan"], name="payment_received", business_key="ORD-2")
    assert again.status_code == 404, again.json
    history = client.get(f"/api/v1/process-instances/{second}/history", headers=users["admin"]).json
    assert any(h["event"] == "message.received" and h["element_id"] == "wait_payment" for h in history)


def test_message_by_correlation_variables_and_by_instance_id(client, users, deployed):
    start_order(client, users, "A", {"order_no": 7})
    target = start_order(client, users, "B", {"order_no": 8})
    response = send(client, users["ivan"], name="payment_received", correlation={"order_no": 8})
    assert response.json["resumed"] == [target]
    other = start_order(client, users, "C")
    response = send(client, users["ivan"], name="payment_received", instance_id=other)
    assert response.json["resumed"] == [other]


def test_message_start_event_starts_a_new_instance(client, users, deployed):
    response = send(client, users["ivan"], name="order_placed", business_key="NEW-1", variables={"sku": "x"})
    assert response.status_code == 200, response.json
    [started] = response.json["started"]
    detail = instance(client, users, started)
    assert detail["process_key"] == "order_intake" and detail["business_key"] == "NEW-1"
    assert detail["variables"]["sku"] == "x"
    assert [t["element_id"] for t in detail["open_tasks"]] == ["check"]


def test_unknown_message_is_404_and_ttl_buffers_until_an_instance_waits(client, users, deployed, context):
    assert send(client, users["ivan"], name="payment_received", business_key="LATE").status_code == 404
    buffered = send(client, users["ivan"], name="payment_received", business_key="LATE", ttl=3600,
                    variables={"paid": 1})
    assert buffered.status_code == 202 and buffered.json["status"] == "buffered"
    other = start_order(client, users, "SOMEONE-ELSE")
    assert instance(client, users, other)["open_tasks"] == []  # the buffered message is not for this one
    late = start_order(client, users, "LATE")
    detail = instance(client, users, late)
    assert [t["element_id"] for t in detail["open_tasks"]] == ["ship"] and detail["variables"]["paid"] == 1
    assert instance(client, users, start_order(client, users, "LATE"))["open_tasks"] == []  # delivered once


def test_buffered_message_expires(client, users, deployed, context):
    send(client, users["ivan"], name="payment_received", business_key="EXP", ttl=60)
    context.clock.advance(timedelta(seconds=61))
    assert instance(client, users, start_order(client, users, "EXP"))["open_tasks"] == []


def test_messages_need_the_messages_permission(client, users, deployed):
    assert send(client, users["alice"], name="payment_received").status_code == 403
    assert send(client, {}, name="payment_received").status_code == 401
    assert send(client, users["ivan"], name="").status_code == 422


def test_concurrent_deliveries_of_one_message_resume_the_instance_once(app, users, deployed, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrency is exercised on PostgreSQL (SQLite serialises writers)")
    client = app.test_client()
    target = start_order(client, users, "RACE")
    statuses, barrier = [], threading.Barrier(4)

    def deliver():
        local = app.test_client()
        barrier.wait()
        statuses.append(send(local, users["ivan"], name="payment_received", business_key="RACE").status_code)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 404, 404, 404]
    history = client.get(f"/api/v1/process-instances/{target}/history", headers=users["admin"]).json
    assert sum(h["event"] == "message.received" for h in history) == 1
    assert sum(h["event"] == "task.created" for h in history) == 1


def test_a_subscription_read_before_a_concurrent_delivery_committed_finds_the_instance_no_longer_waiting(
        client, users, deployed, context):
    """The race of the test above, made certain: the instance's subscription was read, then another delivery
    committed. Delivering finds the instance no longer waiting for the message: not delivered (so 404 when no
    other instance waits), not a failure of the process (422)."""
    from bpm.adapters.orm import ProcessInstance
    from bpm.services import messages

    target = start_order(client, users, "STALE")
    assert send(client, users["ivan"], name="payment_received", business_key="STALE").status_code == 200
    with context.uow() as uow:
        version = uow.session.get(ProcessInstance, target).version
        assert messages._deliver(uow, target, "payment_received", {}, "ivan") is False
        assert not uow.session.dirty and not uow.session.new
    with context.uow() as uow:
        assert uow.session.get(ProcessInstance, target).version == version
    history = client.get(f"/api/v1/process-instances/{target}/history", headers=users["admin"]).json
    assert sum(h["event"] == "message.received" for h in history) == 1


# --- messages thrown by a process: two pools of one deployment talk to each other ------------------------------

POOLS = bpmn_fixture("pools_exchange.bpmn")


def start(client, users, key, business_key):
    response = client.post(f"/api/v1/process-definitions/{key}/instances", headers=users["ivan"],
                           json={"business_key": business_key})
    assert response.status_code == 201, response.json
    return response.json["id"]


def complete_open(client, users, instance_id, element_id, variables):
    [task] = [t for t in instance(client, users, instance_id)["open_tasks"] if t["element_id"] == element_id]
    response = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=users["bob"], json={"variables": variables})
    assert response.status_code == 200, response.json


def history(client, users, instance_id, event):
    entries = client.get(f"/api/v1/process-instances/{instance_id}/history", headers=users["admin"]).json
    return [h for h in entries if h["event"] == event]


def seller_of(client, users, buyer_id):
    [thrown] = history(client, users, buyer_id, "message.thrown")
    assert thrown["data"]["name"] == "quote_requested" and thrown["data"]["process_key"] == "seller", thrown
    return thrown["data"]["started"]


def test_pools_of_one_deployment_exchange_messages_in_the_throwing_step(client, users):
    assert deploy(client, users["dora"], POOLS).status_code == 201
    buyer = start(client, users, "buyer", "Q-1")
    complete_open(client, users, buyer, "ask", {"item": "pump"})
    # the throw started the seller (message start event) in the same command, with the buyer's business key
    seller = seller_of(client, users, buyer)
    detail = instance(client, users, seller)
    assert detail["business_key"] == "Q-1" and detail["variables"]["requested_item"] == "pump"
    assert [t["element_id"] for t in detail["open_tasks"]] == ["price"]
    assert [t["element_id"] for t in instance(client, users, buyer)["open_tasks"]] == []
    # the seller's message end event answers the waiting buyer
    complete_open(client, users, seller, "price", {"price": 120})
    assert instance(client, users, seller)["status"] == "completed"
    [reply] = history(client, users, seller, "message.thrown")
    assert reply["data"] == {"name": "quote_sent", "delivered_to": buyer, "element_id": "wait_quote"}
    buyer_detail = instance(client, users, buyer)
    assert buyer_detail["variables"]["quoted_price"] == 120
    assert [t["element_id"] for t in buyer_detail["open_tasks"]] == ["accept"]
    [received] = history(client, users, buyer, "message.received")
    assert received["element_id"] == "wait_quote"
    complete_open(client, users, buyer, "accept", {})
    assert instance(client, users, buyer)["status"] == "completed"


def test_a_thrown_message_reaches_the_waiting_instance_with_the_same_business_key(client, users):
    deploy(client, users["dora"], POOLS)
    first, second = start(client, users, "buyer", "Q-1"), start(client, users, "buyer", "Q-2")
    complete_open(client, users, first, "ask", {"item": "pump"})
    complete_open(client, users, second, "ask", {"item": "valve"})
    complete_open(client, users, seller_of(client, users, second), "price", {"price": 7})
    assert instance(client, users, first)["open_tasks"] == []  # older subscription, other business key
    assert instance(client, users, second)["variables"]["quoted_price"] == 7


def test_thrown_messages_stay_within_their_deployment(client, users):
    other_file = (POOLS.replace(b'"buyer"', b'"other_buyer"').replace(b'"seller"', b'"other_seller"')
                  .replace(b'processRef="buyer"', b'processRef="other_buyer"'))
    assert deploy(client, users["dora"], other_file).status_code == 201
    assert deploy(client, users["dora"], POOLS).status_code == 201
    foreign = start(client, users, "other_buyer", "Q-1")
    complete_open(client, users, foreign, "ask", {"item": "pump"})
    assert instance(client, users, seller_of_key(client, users, foreign))["process_key"] == "other_seller"
    buyer = start(client, users, "buyer", "Q-1")
    complete_open(client, users, buyer, "ask", {"item": "pump"})
    complete_open(client, users, seller_of(client, users, buyer), "price", {"price": 3})
    assert instance(client, users, buyer)["variables"]["quoted_price"] == 3
    assert instance(client, users, foreign)["open_tasks"] == []  # same message name, same key: other file


def seller_of_key(client, users, buyer_id):
    [thrown] = history(client, users, buyer_id, "message.thrown")
    return thrown["data"]["started"]


def test_a_thrown_message_nobody_waits_for_is_recorded_as_undelivered(client, users):
    deploy(client, users["dora"], POOLS)
    buyer = start(client, users, "buyer", "Q-1")
    complete_open(client, users, buyer, "ask", {"item": "pump"})
    seller = seller_of(client, users, buyer)
    client.post(f"/api/v1/process-instances/{buyer}/cancel", headers=users["admin"])
    complete_open(client, users, seller, "price", {"price": 1})
    assert instance(client, users, seller)["status"] == "completed"  # the thrower's step stands
    [thrown] = history(client, users, seller, "message.thrown")
    assert thrown["data"]["name"] == "quote_sent" and "not delivered" in thrown["data"]["error"]


CANCELLABLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_cancel" targetNamespace="http://example.com/bpm">
  <bpmn:message id="msg_withdrawn" name="order_withdrawn" />
  <bpmn:process id="cancellable_review" name="Cancellable review" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="finance">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="withdrawn" attachedToRef="review">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:messageEventDefinition id="med_w" messageRef="msg_withdrawn" />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="approve" />
    <bpmn:userTask id="approve" name="Approve" camunda:candidateGroups="directors">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f4" sourceRef="approve" targetRef="done" />
    <bpmn:endEvent id="done"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="withdrawn" targetRef="dropped" />
    <bpmn:endEvent id="dropped"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def test_completing_a_task_drops_the_subscription_of_its_message_boundary(client, users):
    """The task was the instance's only open task, but the instance also awaited a message: the completion must
    still compare the stored subscriptions with the step and drop the one that no longer waits."""
    assert deploy(client, users["dora"], CANCELLABLE, "cancellable.bpmn").status_code == 201
    started = client.post("/api/v1/process-definitions/cancellable_review/instances", headers=users["ivan"],
                          json={"business_key": "ORD-9"})
    assert started.status_code == 201, started.json
    [review] = started.json["open_tasks"]
    done = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=users["bob"], json={"variables": {}})
    assert done.status_code == 200, done.json
    late = send(client, users["ivan"], name="order_withdrawn", business_key="ORD-9")
    assert late.status_code == 404, late.json  # nobody waits for it any more
    assert [t["element_id"] for t in instance(client, users, started.json["id"])["open_tasks"]] == ["approve"]
