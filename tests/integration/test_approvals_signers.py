"""加签 / 减签 and countersign modes (会签 all, 或签 any, 依次 sequential, 票签 vote) through the API."""

from __future__ import annotations

import pytest
from approvals_kit import COUNTERSIGN, act, deployed, history, instance, only_task, open_tasks, start, submitted
from sqlalchemy import event


def signers(client, headers, task_id):
    response = client.get(f"/api/v1/tasks/{task_id}/signers", headers=headers)
    assert response.status_code == 200, response.json
    return {s["username"]: s for s in response.json}


def signer_reads_during(context, action) -> tuple[object, list[str]]:
    """What `action()` returned, and the statements it sent that read signer rows as such."""
    sent: list[str] = []

    def keep(_conn, _cursor, statement, *_rest):
        sent.append(" ".join(statement.split()))

    event.listen(context.engine, "before_cursor_execute", keep)
    try:
        result = action()
    finally:
        event.remove(context.engine, "before_cursor_execute", keep)
    return result, [s for s in sent if s.startswith("SELECT task_signers.")]


def test_an_approve_reads_signer_rows_only_when_a_signer_is_pending(client, context, users):
    deployed(client, users)
    _, review = submitted(client, users, business_key="REQ-1")
    plain, reads = signer_reads_during(context, lambda: act(client, users["alice"], review["id"], "approve"))
    assert plain.status_code == 200 and plain.json["status"] == "completed"
    assert reads == []
    _, other = submitted(client, users, business_key="REQ-2")
    act(client, users["alice"], other["id"], "add-signer", users=["carol"], position="parallel")
    waiting, reads = signer_reads_during(context, lambda: act(client, users["alice"], other["id"], "approve"))
    assert waiting.status_code == 200 and waiting.json["status"] == "open"  # carol has not signed yet
    assert reads


def test_signer_before_me_must_act_first(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    added = act(client, users["alice"], review["id"], "add-signer", users=["carol"], position="before",
                comment="legal view first")
    assert added.status_code == 201, added.json
    assert [t["id"] for t in open_tasks(client, users["carol"], scope="signing")] == [review["id"]]
    blocked = act(client, users["alice"], review["id"], "approve")
    assert blocked.status_code == 409 and "carol" in blocked.json["detail"]
    signed = act(client, users["carol"], review["id"], "approve", opinion="legal ok")
    assert signed.status_code == 200 and signed.json["status"] == "open"
    assert signers(client, users["alice"], review["id"])["carol"]["status"] == "done"
    assert act(client, users["alice"], review["id"], "approve").status_code == 200
    trail = instance(client, users["eve"], instance_id)["variables"]["approvals"]
    assert [(a["actor"], a["role"]) for a in trail] == [("eve", "assignee"), ("carol", "signer"),
                                                        ("alice", "assignee")]


def test_signer_after_me_finishes_the_step(client, users):
    deployed(client, users)
    _, review = submitted(client, users)
    act(client, users["alice"], review["id"], "add-signer", users=["carol"], position="after")
    early = act(client, users["carol"], review["id"], "approve")
    assert early.status_code == 409 and "alice" in early.json["detail"]
    mine = act(client, users["alice"], review["id"], "approve", opinion="ok from me")
    assert mine.status_code == 200 and mine.json["status"] == "open"  # waits for the follow-up signer
    assert act(client, users["alice"], review["id"], "add-signer", users=["bob"], position="after").status_code \
        == 409
    done = act(client, users["carol"], review["id"], "approve")
    assert done.status_code == 200 and done.json["status"] == "completed"
    assert only_task(client, users["bob"])["element_id"] == "finance"


def test_parallel_signer_rejection_rejects_the_step(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    act(client, users["alice"], review["id"], "add-signer", users=["carol", "bob"], position="parallel")
    assert act(client, users["alice"], review["id"], "approve").json["status"] == "open"
    rejected = act(client, users["carol"], review["id"], "reject", opinion="too expensive")
    assert rejected.status_code == 200 and rejected.json["status"] == "completed"
    assert instance(client, users["eve"], instance_id)["path"][-1] == "end_rejected"
    assert signers(client, users["alice"], review["id"])["bob"]["status"] == "cancelled"


def test_remove_signer_who_has_not_acted(client, users):
    deployed(client, users)
    instance_id, review = submitted(client, users)
    act(client, users["alice"], review["id"], "add-signer", users=["carol", "bob"], position="parallel")
    act(client, users["carol"], review["id"], "approve")
    assert act(client, users["eve"], review["id"], "remove-signer", username="bob").status_code == 403
    acted = act(client, users["alice"], review["id"], "remove-signer", username="carol")
    assert acted.status_code == 409  # carol already signed
    assert act(client, users["alice"], review["id"], "approve").json["status"] == "open"
    removed = act(client, users["alice"], review["id"], "remove-signer", username="bob")
    assert removed.status_code == 200 and removed.json["status"] == "completed"  # nobody left to wait for
    assert "task.signer_removed" in [h["event"] for h in history(client, users["eve"], instance_id)]


def test_add_signer_validation_and_permission(client, users):
    deployed(client, users)
    _, review = submitted(client, users)
    assert act(client, users["bob"], review["id"], "add-signer", users=["carol"], position="before").status_code \
        == 403
    assert act(client, users["alice"], review["id"], "add-signer", users=["ghost"], position="before").status_code \
        == 422
    assert act(client, users["alice"], review["id"], "add-signer", users=["carol"], position="sideways") \
        .status_code == 422
    act(client, users["alice"], review["id"], "add-signer", users=["carol"], position="before")
    assert act(client, users["alice"], review["id"], "add-signer", users=["carol"], position="after").status_code \
        == 409


def countersign_bpmn(mode: str, sequential: bool = False) -> bytes:
    data = COUNTERSIGN.replace(b'value="MODE"', f'value="{mode}"'.encode())
    return data.replace(b'isSequential="false"', b'isSequential="true"') if sequential else data


def start_countersign(client, users, mode, approvers, sequential=False):
    deployed(client, users, countersign_bpmn(mode, sequential))
    return start(client, users["eve"], key="countersign", approvers=approvers)


def sign_task(client, headers):
    return [t for t in open_tasks(client, headers) if t["element_id"] == "sign"]


def test_countersign_all_one_rejection_ends_it_rejected(client, users):
    instance_id = start_countersign(client, users, "all", ["alice", "bob", "carol"])
    [alice_task] = sign_task(client, users["alice"])
    assert act(client, users["alice"], alice_task["id"], "approve").status_code == 200
    [bob_task] = sign_task(client, users["bob"])
    rejected = act(client, users["bob"], bob_task["id"], "reject", opinion="no")
    assert rejected.status_code == 200, rejected.json
    assert sign_task(client, users["carol"]) == []  # the remaining instance was cancelled
    described = instance(client, users["eve"], instance_id)
    assert described["variables"]["outcome"] == "rejected"
    assert described["variables"]["countersign"] == {"mode": "all", "approved": 1, "rejected": 1, "total": 3}
    assert [t["element_id"] for t in described["open_tasks"]] == ["after_no"]


def test_countersign_all_approves_when_everyone_approved(client, users):
    instance_id = start_countersign(client, users, "all", ["alice", "bob"])
    for name in ("alice", "bob"):
        [task] = sign_task(client, users[name])
        assert act(client, users[name], task["id"], "approve").status_code == 200
    assert [t["element_id"] for t in instance(client, users["eve"], instance_id)["open_tasks"]] == ["after_yes"]


def test_countersign_any_first_approval_cancels_the_others(client, users):
    instance_id = start_countersign(client, users, "any", ["alice", "bob", "carol"])
    [bob_task] = sign_task(client, users["bob"])
    assert act(client, users["bob"], bob_task["id"], "reject").status_code == 200
    [carol_task] = sign_task(client, users["carol"])
    assert act(client, users["carol"], carol_task["id"], "approve").status_code == 200
    assert sign_task(client, users["alice"]) == []
    assert [t["element_id"] for t in instance(client, users["eve"], instance_id)["open_tasks"]] == ["after_yes"]


def test_countersign_sequential_goes_in_order(client, users):
    instance_id = start_countersign(client, users, "sequential", ["carol", "alice"], sequential=True)
    assert sign_task(client, users["alice"]) == []
    [carol_task] = sign_task(client, users["carol"])
    assert act(client, users["carol"], carol_task["id"], "approve").status_code == 200
    [alice_task] = sign_task(client, users["alice"])
    assert act(client, users["alice"], alice_task["id"], "approve").status_code == 200
    assert [t["element_id"] for t in instance(client, users["eve"], instance_id)["open_tasks"]] == ["after_yes"]


@pytest.mark.parametrize("votes, expected", [(["approve", "approve"], "after_yes"),
                                             (["reject", "reject"], "after_no")])
def test_countersign_vote_threshold(client, users, votes, expected):
    # 60 % of 3 voters = 2 approvals needed; two rejections make 2 approvals impossible.
    instance_id = start_countersign(client, users, "vote", ["alice", "bob", "carol"])
    for name, vote in zip(("alice", "bob"), votes, strict=True):
        [task] = sign_task(client, users[name])
        assert act(client, users[name], task["id"], vote).status_code == 200
    assert sign_task(client, users["carol"]) == []
    assert [t["element_id"] for t in instance(client, users["eve"], instance_id)["open_tasks"]] == [expected]
