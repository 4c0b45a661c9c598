"""The approver's inbox through the API: filters, sorting, pagination, counts, CC, deputies, saved filters,
comments with @mentions, attachments and /users/me."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO

from approvals_kit import act, deployed, history, only_task, open_tasks, start, submitted


def test_filters_search_sort_and_keyset_pages(client, users, clock):
    deployed(client, users)
    for index in range(5):
        submitted(client, users, business_key=f"Q-{index}")
        clock.advance(timedelta(hours=1))
    first = client.get("/api/v1/tasks", headers=users["alice"], query_string={"limit": 2}).json
    assert [t["business_key"] for t in first["items"]] == ["Q-0", "Q-1"]  # due date ascending
    second = client.get("/api/v1/tasks", headers=users["alice"],
                        query_string={"limit": 2, "cursor": first["next_cursor"]}).json
    third = client.get("/api/v1/tasks", headers=users["alice"],
                       query_string={"limit": 2, "cursor": second["next_cursor"]}).json
    assert [t["business_key"] for t in second["items"] + third["items"]] == ["Q-2", "Q-3", "Q-4"]
    assert third["next_cursor"] is None
    newest = open_tasks(client, users["alice"], sort="created", limit=1)
    assert newest[0]["business_key"] == "Q-4"
    assert [t["business_key"] for t in open_tasks(client, users["alice"], q="q-3")] == ["Q-3"]
    assert open_tasks(client, users["alice"], q="Manager", priority=81) == []
    assert len(open_tasks(client, users["alice"], priority=80, process="approval_chain")) == 5
    clock.advance(timedelta(hours=22))  # now 12:00 next day; Q-0 .. Q-2 were due at 09:00, 10:00, 11:00
    overdue = open_tasks(client, users["alice"], overdue="true")
    assert [t["business_key"] for t in overdue] == ["Q-0", "Q-1", "Q-2"]
    assert client.get("/api/v1/tasks", headers=users["alice"], query_string={"cursor": "junk"}).status_code == 422
    assert client.get("/api/v1/tasks", headers=users["alice"], query_string={"scope": "x"}).status_code == 422


def test_counts_for_badges(client, users, clock):
    deployed(client, users)
    _, review = submitted(client, users, business_key="A")
    submitted(client, users, business_key="B")
    act(client, users["alice"], review["id"], "approve")  # finance (group task, CC to eve + directors)
    clock.advance(timedelta(days=2))
    counts = client.get("/api/v1/tasks/counts", headers=users["alice"]).json
    assert counts == {"all": 1, "mine": 1, "groups": 0, "delegated": 0, "cc": 0, "signing": 0, "overdue": 1}
    assert client.get("/api/v1/tasks/counts", headers=users["bob"]).json["groups"] == 1
    assert client.get("/api/v1/tasks/counts", headers=users["carol"]).json["cc"] == 1
    assert client.get("/api/v1/tasks/counts").status_code == 401


def test_claimable_scope_pages_through_group_tasks_in_due_order(client, users, clock):
    """The claimable ("groups") list walks the candidate keys' due-date index like the full inbox: unclaimed
    tasks of my groups or naming me, by due date, in keyset pages; other sorts list the same tasks."""
    deployed(client, users, JOINT_REVIEW)
    reviews = []
    for index in range(4):
        start(client, users["ivan"], key="joint_review", business_key=f"J-{index}")
        reviews.append(only_task(client, users["bob"], business_key=f"J-{index}")["id"])
        clock.advance(timedelta(hours=1))  # each one due an hour after the one before
    assert act(client, users["bob"], reviews[1], "claim").status_code == 200
    for name, scope in (("bob", "claimable"), ("bob", "groups"), ("carol", "claimable")):
        first = client.get("/api/v1/tasks", headers=users[name], query_string={"scope": scope, "limit": 2}).json
        second = client.get("/api/v1/tasks", headers=users[name],
                            query_string={"scope": scope, "limit": 2, "cursor": first["next_cursor"]}).json
        assert [t["id"] for t in first["items"] + second["items"]] == [reviews[0], reviews[2], reviews[3]], name
        assert second["next_cursor"] is None
        newest = open_tasks(client, users[name], scope=scope, sort="created")
        assert [t["id"] for t in newest] == [reviews[3], reviews[2], reviews[0]], name
    assert [t["id"] for t in open_tasks(client, users["bob"], scope="mine")] == [reviews[1]]
    assert open_tasks(client, users["eve"], scope="claimable") == []


JOINT_REVIEW = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_joint" targetNamespace="http://example.com/bpm">
  <bpmn:process id="joint_review" name="Joint review" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:userTask id="review" name="Joint review" camunda:candidateGroups="finance,directors"
        camunda:candidateUsers="carol" camunda:dueDate="P1D">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def test_counts_are_the_lengths_of_the_lists(client, users, clock):
    """Each badge is the length of the list its scope shows (and "overdue" of the overdue list): signing,
    delegated, CC through a user and a group, claimable through a group, assigned, some of them overdue."""
    deployed(client, users)
    deployed(client, users, JOINT_REVIEW)
    _, signing = submitted(client, users, business_key="R-1")
    added = act(client, users["alice"], signing["id"], "add-signer", users=["carol"], position="before")
    assert added.status_code == 201, added.json
    _, approved = submitted(client, users, business_key="R-2")
    assert act(client, users["alice"], approved["id"], "approve").status_code == 200  # finance, CC eve + directors
    _, delegated = submitted(client, users, business_key="R-3")
    assert act(client, users["alice"], delegated["id"], "delegate", to="carol").status_code == 200
    for business_key in ("J-1", "J-2"):  # carol is a candidate twice over: by name and through directors
        start(client, users["ivan"], key="joint_review", business_key=business_key)
    claimed = only_task(client, users["bob"], business_key="J-2")
    assert act(client, users["bob"], claimed["id"], "claim").status_code == 200  # no longer claimable by carol
    clock.advance(timedelta(days=2))
    submitted(client, users, business_key="R-4")  # due after the others: not overdue yet
    for name in ("alice", "bob", "carol", "eve", "dora"):
        counts = client.get("/api/v1/tasks/counts", headers=users[name]).json
        listed = {scope: len(open_tasks(client, users[name], scope=scope))
                  for scope in ("all", "mine", "groups", "delegated", "cc", "signing")}
        listed["overdue"] = len(open_tasks(client, users[name], overdue="true"))
        assert counts == listed, name
    assert client.get("/api/v1/tasks/counts", headers=users["alice"]).json["overdue"] >= 1
    carol = client.get("/api/v1/tasks/counts", headers=users["carol"]).json
    assert carol["signing"] == 1 and carol["groups"] == 1


def test_cc_inbox_is_read_only(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    act(client, users["alice"], review["id"], "approve")
    cc = client.get("/api/v1/cc", headers=users["carol"])
    assert cc.status_code == 200 and [t["element_id"] for t in cc.json["items"]] == ["finance"]
    task_id = cc.json["items"][0]["id"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=users["carol"]).status_code == 200
    assert act(client, users["carol"], task_id, "approve").status_code == 403
    assert client.get("/api/v1/cc", headers=users["alice"]).json["items"] == []
    [entry] = [h for h in history(client, users["eve"], instance_id) if h["event"] == "task.cc"]
    assert entry["data"]["cc"] == ["user:eve", "group:directors"]


def test_deputy_receives_new_tasks_marked_as_such(client, users, clock):
    deployed(client, users)
    url = "/api/v1/users/me/substitute"
    assert client.get(url, headers=users["alice"]).status_code == 404
    bad = client.put(url, headers=users["alice"], json={"deputy": "carol", "starts_at": "2026-01-06T00:00:00Z",
                                                        "ends_at": "2026-01-05T00:00:00Z"})
    assert bad.status_code == 422
    assert client.put(url, headers=users["alice"], json={"deputy": "ghost", "starts_at": "2026-01-05T00:00:00Z",
                                                         "ends_at": "2026-01-09T00:00:00Z"}).status_code == 422
    put = client.put(url, headers=users["alice"], json={"deputy": "carol", "starts_at": "2026-01-05T00:00:00Z",
                                                        "ends_at": "2026-01-09T00:00:00Z"})
    assert put.status_code == 200 and put.json["deputy"] == "carol"
    instance_id = start(client, users["eve"], initiator="eve")
    act(client, users["eve"], only_task(client, users["eve"])["id"], "approve")
    task = only_task(client, users["carol"])
    assert task["assignee"] == "carol" and task["substitute_for"] == "alice"
    assert task["original_assignee"] == "alice"
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=users["alice"]).status_code == 200
    assert "task.substituted" in [h["event"] for h in history(client, users["eve"], instance_id)]
    assert client.delete(url, headers=users["alice"]).status_code == 204
    clock.advance(timedelta(hours=1))
    _, review = submitted(client, users, business_key="later")
    assert review["assignee"] == "alice" and review["substitute_for"] is None


def test_saved_filters_per_user(client, users):
    url = "/api/v1/saved-filters"
    created = client.post(url, headers=users["alice"], json={"name": "Urgent", "query": {"priority": 80}})
    assert created.status_code == 201 and created.json["query"] == {"priority": 80}
    assert client.post(url, headers=users["alice"], json={"name": "Urgent"}).status_code == 409
    assert [f["name"] for f in client.get(url, headers=users["alice"]).json] == ["Urgent"]
    assert client.get(url, headers=users["bob"]).json == []
    assert client.delete(f"{url}/{created.json['id']}", headers=users["bob"]).status_code == 404
    assert client.delete(f"{url}/{created.json['id']}", headers=users["alice"]).status_code == 204
    assert client.get(url, headers=users["alice"]).json == []


def test_comments_with_mentions(client, users, context):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    url = f"/api/v1/tasks/{review['id']}/comments"
    posted = client.post(url, headers=users["alice"], json={"text": "@bob can you confirm? cc @ghost"})
    assert posted.status_code == 201 and posted.json["mentions"] == ["bob"]
    assert client.post(url, headers=users["nobody"], json={"text": "hi"}).status_code == 403
    assert client.post(url, headers=users["alice"], json={"text": ""}).status_code == 422
    listed = client.get(url, headers=users["eve"])
    assert listed.status_code == 200 and [c["author"] for c in listed.json] == ["alice"]
    assert client.get(url, headers=users["bob"]).status_code == 403
    assert "task.commented" in [h["event"] for h in history(client, users["eve"], instance_id)]
    _assert_mention_enqueued(context, "bob")


def _assert_mention_enqueued(context, username):
    try:
        from bpm.adapters.orm_outbox import OutboxMessage
    except ImportError:  # the outbox is optional: the comment is still recorded
        return
    from sqlalchemy import select

    uow = context.uow()
    with uow:
        payloads = [m.payload for m in uow.session.scalars(select(OutboxMessage))]
    assert any(p.get("username") == username and "mentioned" in p.get("title", "") for p in payloads), payloads


def test_attachments_upload_list_download_and_limits(client, users, settings):
    deployed(client, users)
    _, review = submitted(client, users)
    url = f"/api/v1/tasks/{review['id']}/attachments"

    def upload(headers, data, name="quote.pdf", mimetype="application/pdf"):
        return client.post(url, headers=headers, content_type="multipart/form-data",
                           data={"file": (BytesIO(data), name, mimetype)})

    stored = upload(users["alice"], b"%PDF-1.4 test")
    assert stored.status_code == 201, stored.json
    assert stored.json["size"] == 13 and stored.json["filename"] == "quote.pdf"
    assert len(list((settings.var_dir / "attachments").iterdir())) == 1
    assert upload(users["alice"], b"MZ", name="x.exe", mimetype="application/x-msdownload").status_code == 422
    too_big = client.post(url, headers=users["alice"], data=_multipart(b"x" * (10 * 1024 * 1024 + 1)),
                          content_type=f"multipart/form-data; boundary={BOUNDARY}")
    assert too_big.status_code == 413
    assert upload(users["nobody"], b"hi", name="a.txt", mimetype="text/plain").status_code == 403
    listed = client.get(url, headers=users["eve"]).json
    assert [a["filename"] for a in listed] == ["quote.pdf"]
    download = client.get(f"/api/v1/attachments/{stored.json['id']}", headers=users["eve"])
    assert download.status_code == 200 and download.data == b"%PDF-1.4 test"
    assert download.headers["Content-Type"] == "application/pdf"
    download.close()
    assert client.get(f"/api/v1/attachments/{stored.json['id']}", headers=users["bob"]).status_code == 403
    assert client.get("/api/v1/attachments/999999", headers=users["eve"]).status_code == 404


BOUNDARY = "bpmtestboundary"


def _multipart(data: bytes) -> bytes:
    """A hand-made body (the test client would spool a large generated one to an unclosed temp file)."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_users_me(client, users):
    me = client.get("/api/v1/users/me", headers=users["alice"])
    assert me.status_code == 200
    assert me.json["username"] == "alice" and me.json["display_name"] == "Alice"
    assert me.json["roles"] == ["approver"] and me.json["groups"] == ["team-leads"]
    assert client.get("/api/v1/users/me").status_code == 401


def test_group_candidates_leave_the_due_index_when_the_task_closes(client, users, context):
    from sqlalchemy import select

    from bpm.adapters.orm import TaskCandidate

    deployed(client, users)
    _, review = submitted(client, users)
    act(client, users["alice"], review["id"], "approve")
    finance = only_task(client, users["bob"])
    uow = context.uow()
    with uow:
        assert uow.session.scalar(select(TaskCandidate.is_open).where(TaskCandidate.task_id == finance["id"]))
    assert act(client, users["bob"], finance["id"], "approve").status_code == 200
    with uow:
        assert uow.session.scalar(select(TaskCandidate.is_open).where(TaskCandidate.task_id == finance["id"])) \
            is False
    assert open_tasks(client, users["bob"]) == []


def test_a_business_key_filter_lists_exactly_that_cases_part_of_each_list(client, users):
    """`?business_key=` has its own statement (the case's open tasks off the business key's index): for every user
    and list it shows what the unfiltered list shows of that case, in the same order; across assigned tasks,
    tasks claimable through a group and by name, a task claimed by somebody else and two processes sharing a key."""
    deployed(client, users)
    deployed(client, users, JOINT_REVIEW)
    submitted(client, users, business_key="CASE-1")  # alice's team-leads review
    for business_key in ("CASE-1", "CASE-2", "CASE-3"):  # finance, directors and carol by name
        start(client, users["ivan"], key="joint_review", business_key=business_key)
    claimed = only_task(client, users["bob"], business_key="CASE-2")
    assert act(client, users["bob"], claimed["id"], "claim").status_code == 200
    shown = 0
    for name in ("alice", "bob", "carol", "eve"):
        for scope in ("all", "claimable", "groups"):
            everything = open_tasks(client, users[name], scope=scope)
            for business_key in ("CASE-1", "CASE-2", "CASE-3", "NONE"):
                keyed = open_tasks(client, users[name], scope=scope, business_key=business_key)
                expected = [t["id"] for t in everything if t["business_key"] == business_key]
                assert [t["id"] for t in keyed] == expected, (name, scope, business_key)
                shown += len(keyed)
    assert shown == 14  # 14 of the 48 keyed lists hold a task (none holds two)
    assert [t["id"] for t in open_tasks(client, users["bob"], business_key="CASE-2")] == [claimed["id"]]
    assert open_tasks(client, users["carol"], scope="claimable", business_key="CASE-2") == []
