"""Approval operations through the API: approve/reject, delegate, transfer, assign, send back, withdraw, urge."""

from __future__ import annotations

from datetime import timedelta

from approvals_kit import (
    CHAIN,
    act,
    add_user,
    deployed,
    history,
    instance,
    only_task,
    open_tasks,
    start,
    submitted,
)


def test_approve_sets_routing_variables_and_the_approval_trail(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    assert review["element_id"] == "review" and review["assignee"] == "alice"
    approved = act(client, users["alice"], review["id"], "approve", opinion="looks fine",
                   variables={"note": "ok"})
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "completed" and approved.json["completed_by"] == "alice"
    variables = instance(client, users["eve"], instance_id)["variables"]
    assert variables["approved"] is True and variables["outcome"] == "approved"
    assert variables["opinion"] == "looks fine" and variables["note"] == "ok"
    assert [(a["step"], a["actor"], a["outcome"]) for a in variables["approvals"]] == [
        ("submit", "eve", "approved"), ("review", "alice", "approved")]
    assert only_task(client, users["bob"])["element_id"] == "finance"  # the gateway routed on `approved`
    events = [(h["event"], h["actor"]) for h in history(client, users["eve"], instance_id)]
    assert ("task.approved", "alice") in events


def test_reject_routes_to_the_rejected_end_and_records_the_reason(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    rejected = act(client, users["alice"], review["id"], "reject", opinion="no budget", reason="budget")
    assert rejected.status_code == 200, rejected.json
    described = instance(client, users["eve"], instance_id)
    assert described["status"] == "completed" and described["path"][-1] == "end_rejected"
    assert described["variables"]["outcome"] == "rejected" and described["variables"]["approved"] is False
    [entry] = [h for h in history(client, users["eve"], instance_id) if h["event"] == "task.rejected"]
    assert entry["actor"] == "alice" and entry["data"] == {"opinion": "no budget", "reason": "budget"}


def test_approve_permission_and_state_errors(client, users):
    deployed(client, users)
    _, review = submitted(client, users)
    assert act(client, users["bob"], review["id"], "approve").status_code == 403
    assert act(client, users["nobody"], review["id"], "approve").status_code == 403
    assert act(client, users["alice"], review["id"], "approve").status_code == 200
    again = act(client, users["alice"], review["id"], "approve")
    assert again.status_code == 409 and "completed" in again.json["detail"]
    assert act(client, users["alice"], "no-such-task", "approve").status_code == 404


def test_delegate_then_resolve_then_owner_finishes(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    assert act(client, users["bob"], review["id"], "delegate", to="carol").status_code == 403
    delegated = act(client, users["alice"], review["id"], "delegate", to="carol", comment="check numbers")
    assert delegated.status_code == 200, delegated.json
    assert delegated.json["assignee"] == "carol" and delegated.json["owner"] == "alice"
    assert delegated.json["delegation_state"] == "pending"
    assert [t["id"] for t in open_tasks(client, users["carol"], scope="delegated")] == [review["id"]]
    # the delegatee cannot finish, and neither can the owner while it is away
    assert act(client, users["carol"], review["id"], "approve").status_code == 409
    assert client.post(f"/api/v1/tasks/{review['id']}/complete", headers=users["carol"], json={}).status_code == 409
    assert act(client, users["alice"], review["id"], "approve").status_code == 409
    assert act(client, users["alice"], review["id"], "resolve").status_code == 403
    resolved = act(client, users["carol"], review["id"], "resolve", comment="numbers ok", variables={"checked": 1})
    assert resolved.status_code == 200 and resolved.json["assignee"] == "alice"
    assert resolved.json["delegation_state"] == "resolved"
    assert act(client, users["carol"], review["id"], "resolve").status_code == 409
    assert act(client, users["alice"], review["id"], "approve").status_code == 200
    assert instance(client, users["eve"], instance_id)["variables"]["checked"] == 1
    events = [h["event"] for h in history(client, users["eve"], instance_id)]
    assert events.index("task.delegated") < events.index("task.resolved") < events.index("task.approved", 3)


def test_transfer_moves_the_task_for_good(client, users):
    deployed(client, users)
    _, review = submitted(client, users)
    assert act(client, users["carol"], review["id"], "transfer", to="bob").status_code == 403
    assert act(client, users["alice"], review["id"], "transfer", to="ghost").status_code == 422
    assert act(client, users["alice"], review["id"], "transfer", to="alice").status_code == 422
    moved = act(client, users["alice"], review["id"], "transfer", to="bob", comment="your area")
    assert moved.status_code == 200 and moved.json["assignee"] == "bob" and moved.json["owner"] is None
    assert open_tasks(client, users["alice"]) == []
    assert act(client, users["alice"], review["id"], "approve").status_code == 403
    assert act(client, users["bob"], review["id"], "approve").status_code == 200


def test_assign_by_admin_or_supervisor_only(client, users):
    deployed(client, users)
    _, review = submitted(client, users)
    boss = add_user(client, users, "boss", roles=("approver",))
    assert act(client, users["carol"], review["id"], "assign", assignee="bob").status_code == 403
    assert act(client, boss, review["id"], "assign", assignee="bob").status_code == 403
    assert act(client, users["admin"], review["id"], "assign", assignee="ghost").status_code == 422
    assigned = act(client, users["admin"], review["id"], "assign", assignee="bob")
    assert assigned.status_code == 200 and assigned.json["assignee"] == "bob"
    add_user(client, users, "dave", supervisor="boss")
    assert act(client, boss, review["id"], "assign", assignee="dave").status_code == 200


def test_send_back_to_previous_step_reruns_later_steps(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    assert act(client, users["bob"], review["id"], "send-back").status_code == 403
    sent = act(client, users["alice"], review["id"], "send-back", comment="attach the quote")
    assert sent.status_code == 200, sent.json
    assert sent.json["status"] == "cancelled"
    again = only_task(client, users["eve"])
    assert again["element_id"] == "submit" and again["assignee"] == "eve"
    assert open_tasks(client, users["alice"]) == []
    assert act(client, users["eve"], again["id"], "approve", opinion="attached").status_code == 200
    review_again = only_task(client, users["alice"])
    assert review_again["element_id"] == "review"
    assert act(client, users["alice"], review_again["id"], "approve").status_code == 200
    assert only_task(client, users["bob"])["element_id"] == "finance"
    events = [h["event"] for h in history(client, users["eve"], instance_id)]
    assert "task.sent_back" in events and "task.reopened" in events


def test_send_back_to_a_chosen_earlier_step_and_bad_targets(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    act(client, users["alice"], review["id"], "approve")
    finance = only_task(client, users["bob"])
    act(client, users["bob"], finance["id"], "claim")
    assert act(client, users["bob"], finance["id"], "send-back", to_element_id="end_ok").status_code == 409
    assert act(client, users["bob"], finance["id"], "send-back", to_element_id="submit").status_code == 200
    assert only_task(client, users["eve"])["element_id"] == "submit"
    assert instance(client, users["eve"], instance_id)["status"] == "running"


def test_send_back_from_the_first_step_is_refused(client, users):
    deployed(client, users)
    start(client, users["eve"], initiator="eve")
    submit = only_task(client, users["eve"])
    refused = act(client, users["eve"], submit["id"], "send-back")
    assert refused.status_code == 409 and "no earlier step" in refused.json["detail"]


def test_withdraw_before_the_next_step_acts(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    url = f"/api/v1/process-instances/{instance_id}/withdraw"
    assert client.post(url, headers=users["alice"], json={"reason": "x"}).status_code == 403
    withdrawn = client.post(url, headers=users["eve"], json={"reason": "wrong customer"})
    assert withdrawn.status_code == 200 and withdrawn.json["status"] == "cancelled"
    assert open_tasks(client, users["alice"]) == []
    assert client.post(url, headers=users["eve"], json={}).status_code == 409
    [entry] = [h for h in history(client, users["eve"], instance_id) if h["event"] == "instance.withdrawn"]
    assert entry["actor"] == "eve" and entry["data"]["reason"] == "wrong customer"


def test_withdraw_refused_once_the_next_step_was_acted_on(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    act(client, users["alice"], review["id"], "approve")
    refused = client.post(f"/api/v1/process-instances/{instance_id}/withdraw", headers=users["eve"], json={})
    assert refused.status_code == 409 and "acted on" in refused.json["detail"]


def test_urge_is_rate_limited_and_permission_checked(client, users, clock):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    assert act(client, users["bob"], review["id"], "urge").status_code == 403
    assert act(client, users["eve"], review["id"], "urge", comment="customer waiting").status_code == 200
    limited = act(client, users["eve"], review["id"], "urge")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) == 600
    assert limited.content_type == "application/problem+json"
    clock.advance(timedelta(minutes=10, seconds=1))
    assert act(client, users["eve"], review["id"], "urge").status_code == 200
    urged = [h for h in history(client, users["eve"], instance_id) if h["event"] == "task.urged"]
    assert len(urged) == 2 and urged[0]["data"]["recipients"] == ["alice"]


def test_bulk_approve_reports_per_task(client, users):
    deployed(client, users)
    _, first = submitted(client, users, business_key="A")
    _, _ = submitted(client, users, business_key="B")
    second = [t for t in open_tasks(client, users["alice"]) if t["id"] != first["id"]][0]
    act(client, users["alice"], first["id"], "approve")
    response = client.post("/api/v1/tasks/bulk-approve", headers=users["alice"],
                           json={"task_ids": [first["id"], second["id"], "missing"], "opinion": "ok"})
    assert response.status_code == 200, response.json
    results = {r["task_id"]: r for r in response.json}
    assert results[second["id"]]["ok"] is True
    assert results[first["id"]]["ok"] is False and results[first["id"]]["error"] == "invalid-state"
    assert results[first["id"]]["status"] == 409
    assert results["missing"]["error"] == "not-found" and results["missing"]["status"] == 404


def test_dedupe_auto_approves_a_later_step_of_the_same_approver(client, users):
    deduped = CHAIN.replace(b'name="bpm.dedupeApprovers" value="false"', b'name="bpm.dedupeApprovers" value="true"')
    deduped = deduped.replace(b'camunda:candidateGroups="finance"', b'camunda:assignee="alice"')
    deployed(client, users, deduped)
    instance_id, review = submitted(client, users)
    assert act(client, users["alice"], review["id"], "approve", opinion="fine").status_code == 200
    described = instance(client, users["eve"], instance_id)
    assert described["status"] == "completed" and described["path"][-1] == "end_ok"
    trail = described["variables"]["approvals"]
    assert [(a["step"], a["actor"], a["role"]) for a in trail][-1] == ("finance", "alice", "auto")
    [auto] = [h for h in history(client, users["eve"], instance_id)
              if h["event"] == "task.approved" and h["element_id"] == "finance"]
    assert auto["data"]["auto"] is True


def test_task_detail_lists_the_callers_actions(client, users):
    deployed(client, users)
    _, review = submitted(client, users)

    def actions(name):
        response = client.get(f"/api/v1/tasks/{review['id']}", headers=users[name])
        assert response.status_code == 200, response.json
        return set(response.json["actions"])

    assert {"approve", "reject", "delegate", "transfer", "add-signer", "send-back"} <= actions("alice")
    assert "urge" in actions("eve") and "approve" not in actions("eve")
    act(client, users["alice"], review["id"], "delegate", to="carol")
    assert "resolve" in actions("carol") and "approve" not in actions("carol")
    assert "approve" not in actions("alice")


def test_the_trail_holds_this_commands_decision_once_whether_or_not_it_was_written_yet(client, users, context):
    from bpm.adapters.orm import Task
    from bpm.services.approvals import _add_record, approval_trail

    deployed(client, users)
    instance_id, review = submitted(client, users)
    with context.uow() as uow:
        task = uow.session.get(Task, review["id"])
        added = _add_record(uow, task, "alice", "approved", "fine", "assignee")
        unwritten = approval_trail(uow, instance_id, added)
        uow.flush()  # now the record is read back with the others
        written = approval_trail(uow, instance_id, added)
    expected = [("submit", "eve", "please"), ("review", "alice", "fine")]
    for trail in (unwritten, written):
        assert [(entry["step"], entry["actor"], entry["opinion"]) for entry in trail] == expected


def test_the_stored_trail_equals_the_records_read_back_times_included(client, users, context):
    """The `approvals` variable an approve stores (the records read on the driver, plus its own, not written yet)
    equals the records read alone afterwards, times to the microsecond included."""
    from bpm.adapters.orm_approvals import ApprovalRecord
    from bpm.services import approvals

    deployed(client, users)
    instance_id, review = submitted(client, users)
    with context.uow() as uow:
        [submit] = uow.session.query(ApprovalRecord).filter_by(instance_id=instance_id).all()
        submit.at += timedelta(microseconds=123_456)
        uow.commit()
    assert act(client, users["alice"], review["id"], "approve", opinion=None).status_code == 200
    stored = instance(client, users["eve"], instance_id)["variables"]["approvals"]
    with context.uow() as uow:
        read_alone = approvals.approval_trail(uow, instance_id)
    assert [(entry["step"], entry["actor"], entry["opinion"]) for entry in stored] == [
        ("submit", "eve", "please"), ("review", "alice", None)]
    assert stored == read_alone and stored[0]["at"].endswith(".123456+00:00")


def test_the_trail_read_with_the_task_equals_the_records_read_alone(client, users, context):
    """An approve reads the instance's records in its load (`_trail_column`, JSON): the trail it stores equals
    the records read alone, for a time without microseconds (isoformat leaves them out), one with, an opinion in
    Chinese and records whose ids run against their times."""
    from bpm.adapters.orm_approvals import ApprovalRecord
    from bpm.services import approvals

    deployed(client, users)
    instance_id, review = submitted(client, users)
    with context.uow() as uow:
        [submit] = uow.session.query(ApprovalRecord).filter_by(instance_id=instance_id).all()
        submit.at = submit.at.replace(microsecond=0)
        uow.session.add(ApprovalRecord(instance_id=instance_id, task_id=submit.task_id, element_id="submit",
                                       step="补充材料", actor="eve", outcome="approved", opinion="已补充 ✓",
                                       role="assignee", at=submit.at - timedelta(hours=1, microseconds=7)))
        uow.commit()
    assert act(client, users["alice"], review["id"], "approve", opinion="好").status_code == 200
    stored = instance(client, users["eve"], instance_id)["variables"]["approvals"]
    with context.uow() as uow:
        read_alone = approvals.approval_trail(uow, instance_id)
    assert [(entry["step_name"], entry["opinion"]) for entry in stored] == [
        ("Submit request", "please"), ("补充材料", "已补充 ✓"), ("Manager review", "好")], stored
    assert stored == read_alone
    assert "." not in stored[0]["at"] and stored[1]["at"].endswith(".999993+00:00"), stored
