"""Concurrent writers get exactly one success; the inbox pages without gaps or duplicates."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import bpmn_fixture, deploy
from werkzeug.serving import make_server

EXPENSE = bpmn_fixture("expense_approval.bpmn")
CLIENTS = 20


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def start_expense(client, users, business_key="EXP", amount=5000):
    response = client.post("/api/v1/process-definitions/expense_approval/instances", headers=users["ivan"],
                           json={"business_key": business_key, "variables": {"amount": amount}})
    assert response.status_code == 201, response.json
    return response.json


def hammer(url: str, headers: dict, clients: int = CLIENTS) -> list[int]:
    barrier = threading.Barrier(clients)

    def one(_):
        with requests.Session() as session:
            barrier.wait(timeout=30)
            return session.post(url, headers=headers, json={"variables": {"ok": True}}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(one, range(clients)))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_twenty_concurrent_completions_give_one_success_on_postgres(client, users, live_server):
    deploy(client, users["dora"], EXPENSE)
    instance = start_expense(client, users)
    [task] = instance["open_tasks"]
    statuses = hammer(f"{live_server}/api/v1/tasks/{task['id']}/complete", users["alice"])
    assert sorted(statuses) == [200] + [409] * (CLIENTS - 1), statuses
    history = client.get(f"/api/v1/process-instances/{instance['id']}/history", headers=users["ivan"]).json
    assert [h["event"] for h in history].count("task.completed") == 1
    [next_task] = client.get(f"/api/v1/process-instances/{instance['id']}", headers=users["ivan"]).json["open_tasks"]
    assert next_task["element_id"] == "finance_review"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_concurrent_claims_have_one_winner_on_postgres(client, users, context, live_server):
    from bpm.services import identity

    identity.update_user_groups("eve", ["team-leads"], context.uow())
    deploy(client, users["dora"], EXPENSE)
    [task] = start_expense(client, users)["open_tasks"]
    url = f"{live_server}/api/v1/tasks/{task['id']}/claim"
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda who: requests.post(url, headers=users[who], timeout=30).status_code,
                                 ["alice", "eve"]))
    assert sorted(statuses) == [200, 409]
    claimed = client.get(f"/api/v1/tasks/{task['id']}", headers=users["alice"]).json
    assert claimed["assignee"] in ("alice", "eve")


def test_completing_a_completed_task_is_409(client, users):
    deploy(client, users["dora"], EXPENSE)
    [task] = start_expense(client, users)["open_tasks"]
    url = f"/api/v1/tasks/{task['id']}/complete"
    assert client.post(url, headers=users["alice"], json={}).status_code == 200
    again = client.post(url, headers=users["alice"], json={})
    assert again.status_code == 409 and "completed" in again.json["detail"]


def test_only_candidates_assignees_or_admins_may_act(client, users):
    deploy(client, users["dora"], EXPENSE)
    [task] = start_expense(client, users)["open_tasks"]
    base = f"/api/v1/tasks/{task['id']}"
    assert client.post(f"{base}/claim", headers=users["bob"]).status_code == 403
    assert client.post(f"{base}/complete", headers=users["bob"], json={}).status_code == 403
    assert client.get(base, headers=users["eve"]).status_code == 403
    assert client.post(f"{base}/claim", headers=users["alice"]).status_code == 200
    taken = client.post(f"{base}/claim", headers=users["admin"])
    assert taken.status_code == 409 and "alice" in taken.json["detail"]
    assert client.post(f"{base}/unclaim", headers=users["bob"]).status_code == 403
    assert client.post(f"{base}/complete", headers=users["admin"], json={}).status_code == 200


def test_unclaim_returns_the_task_to_the_group(client, users):
    deploy(client, users["dora"], EXPENSE)
    [task] = start_expense(client, users)["open_tasks"]
    base = f"/api/v1/tasks/{task['id']}"
    client.post(f"{base}/claim", headers=users["alice"])
    mine = client.get("/api/v1/tasks", headers=users["alice"], query_string={"scope": "mine"}).json["items"]
    assert [t["id"] for t in mine] == [task["id"]]
    assert client.post(f"{base}/unclaim", headers=users["alice"]).status_code == 200
    assert client.get("/api/v1/tasks", headers=users["alice"], query_string={"scope": "mine"}).json["items"] == []
    claimable = client.get("/api/v1/tasks", headers=users["alice"], query_string={"scope": "claimable"}).json
    assert [t["id"] for t in claimable["items"]] == [task["id"]]
    assert client.post(f"{base}/unclaim", headers=users["alice"]).status_code == 409


@pytest.mark.parametrize("sort", ["due", "priority", "created"])
def test_keyset_pagination_walks_every_task_once(client, users, clock, sort):
    from datetime import timedelta

    deploy(client, users["dora"], EXPENSE)
    expected = set()
    for number in range(7):
        clock.advance(timedelta(minutes=number))
        expected.add(start_expense(client, users, business_key=f"EXP-{number}")["open_tasks"][0]["id"])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, "sort": sort, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/tasks", headers=users["alice"], query_string=params).json
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7 and set(seen) == expected


def test_inbox_filters_by_business_key_and_due_date(client, users, clock):
    deploy(client, users["dora"], EXPENSE)
    start_expense(client, users, business_key="A")
    start_expense(client, users, business_key="B")
    only_a = client.get("/api/v1/tasks", headers=users["alice"], query_string={"business_key": "A"}).json["items"]
    assert [t["business_key"] for t in only_a] == ["A"]
    due_soon = client.get("/api/v1/tasks", headers=users["alice"],
                          query_string={"due_before": "2026-01-06T00:00:00+00:00"}).json["items"]
    assert due_soon == []  # both are due 2026-01-07 (P2D)
    bad = client.get("/api/v1/tasks", headers=users["alice"], query_string={"cursor": "garbage!"})
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]


def test_default_inbox_pages_from_dated_to_undated_tasks_and_stays_per_user(client, users):
    """The default inbox statement is built once per shape and reused with each caller's values: pages that end
    on a dated and on an undated task, and two callers with as many groups, each get their own rows."""
    deploy(client, users["dora"], EXPENSE)
    assert deploy(client, users["dora"], bpmn_fixture("approval_chain.bpmn")).status_code == 201
    dated = {start_expense(client, users, business_key=f"EXP-{n}")["open_tasks"][0]["id"] for n in range(3)}
    undated = set()
    for number in range(3):
        started = client.post("/api/v1/process-definitions/approval_chain/instances", headers=users["ivan"],
                              json={"business_key": f"REQ-{number}", "variables": {"initiator": "alice"}})
        assert started.status_code == 201, started.json
        undated.add(started.json["open_tasks"][0]["id"])
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/tasks", headers=users["alice"], query_string=params).json
        pages.append([t["id"] for t in page["items"]])
        cursor = page["next_cursor"]
        bob = client.get("/api/v1/tasks", headers=users["bob"], query_string={"limit": 2}).json
        assert bob["items"] == []  # bob (finance, as many groups as alice) sees none of them
        if not cursor or len(pages) > 3:
            break
    seen = [task_id for page in pages for task_id in page]
    assert len(pages) == 3 and len(seen) == 6
    assert set(seen[:3]) == dated and set(seen[3:]) == undated  # dated first, undated last
