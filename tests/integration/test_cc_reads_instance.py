"""Someone copied in (抄送) on a task reads it and its instance (detail and history) but cannot act on either;
the supervisor of a task's assignee reads it too, and may assign it."""

from __future__ import annotations

from approvals_kit import act, add_user, deployed, submitted


def _cc_task(client, users):
    instance_id, review = submitted(client, users)
    assert act(client, users["alice"], review["id"], "approve").status_code == 200
    [task] = client.get("/api/v1/cc", headers=users["carol"]).json["items"]  # carol: CC'd as group directors
    return instance_id, task


def test_copied_in_user_reads_the_instance_and_its_history(client, users):
    deployed(client, users)
    instance_id, task = _cc_task(client, users)
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["carol"])
    assert detail.status_code == 200, detail.json
    assert [t["element_id"] for t in detail.json["open_tasks"]] == ["finance"]
    history = client.get(f"/api/v1/process-instances/{instance_id}/history", headers=users["carol"])
    assert history.status_code == 200, history.json
    events = [(row["event"], row["actor"]) for row in history.json]
    assert ("task.approved", "alice") in events and any(event == "task.cc" for event, _ in events)


def test_copied_in_user_still_cannot_act(client, users):
    deployed(client, users)
    instance_id, task = _cc_task(client, users)
    for operation in ("approve", "reject", "claim", "transfer", "send-back"):
        body = {"to": "bob"} if operation == "transfer" else {}
        assert act(client, users["carol"], task["id"], operation, **body).status_code == 403, operation
    withdraw = client.post(f"/api/v1/process-instances/{instance_id}/withdraw", headers=users["carol"], json={})
    assert withdraw.status_code == 403
    cancel = client.post(f"/api/v1/process-instances/{instance_id}/cancel", headers=users["carol"], json={})
    assert cancel.status_code == 403
    detail = client.get(f"/api/v1/process-instances/{instance_id}", headers=users["carol"]).json
    assert detail["status"] == "running" and [t["element_id"] for t in detail["open_tasks"]] == ["finance"]


def test_an_uninvolved_approver_still_may_not_read_the_instance(client, users):
    deployed(client, users)
    instance_id, _task = _cc_task(client, users)
    zed = add_user(client, users, "zed", groups=("nowhere",))
    assert client.get(f"/api/v1/process-instances/{instance_id}/history", headers=zed).status_code == 403
    assert client.get(f"/api/v1/process-instances/{instance_id}", headers=zed).status_code == 403


def test_supervisor_of_the_assignee_reads_the_task_and_may_assign_it(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    sam = add_user(client, users, "sam")
    tina = add_user(client, users, "tina", groups=("team-leads",), supervisor="sam")
    url = f"/api/v1/tasks/{review['id']}"
    assert client.get(url, headers=sam).status_code == 403  # nobody sam supervises holds it yet
    assert act(client, users["admin"], review["id"], "assign", assignee="tina").status_code == 200
    assert client.get(url, headers=tina).json["assignee"] == "tina"
    seen = client.get(url, headers=sam)
    assert seen.status_code == 200 and "assign" in seen.json["actions"] and "approve" not in seen.json["actions"]
    assert client.get(f"/api/v1/process-instances/{instance_id}/history", headers=sam).status_code == 200
    assert act(client, sam, review["id"], "approve").status_code == 403
    assigned = act(client, sam, review["id"], "assign", assignee="alice")
    assert assigned.status_code == 200 and assigned.json["assignee"] == "alice"
    assert client.get(url, headers=sam).status_code == 403  # alice is not sam's report
