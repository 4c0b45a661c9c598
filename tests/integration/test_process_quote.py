"""The shipped quote approval process end to end through the API: routing by rules, the reject-revise loop,
withdrawal, the parallel finance + legal countersign, and the approved quote's PDF (Chinese names included)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from pypdf import PdfReader
from shipped_kit import complete, create_staff, deploy_shipped, get, inbox, only_task, post
from sqlalchemy import select

from bpm.adapters.orm import HistoryEntry
from bpm.services import escalation

APPROVER = {"sales_manager": "sam", "technical_director": "tina", "sales_director": "sid",
            "general_manager": "gina", "vice_president": "vic"}
SMALL = ["sales_manager"]
LARGE = ["technical_director", "sales_director", "general_manager"]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def staff(client, users, context):
    deploy_shipped(client, users["dora"], ("quote_approval",))
    return create_staff(context)


def new_quote(client, staff, amount, discount, customer="Acme Trading", items=None) -> dict:
    customer_id = post(client, staff["amy"], "/api/v1/customers", {"name": customer, "region": "east"})["id"]
    items = items or [{"product": "Industrial pump", "quantity": 2, "unit_price": amount / 2}]
    return post(client, staff["amy"], "/api/v1/quotes",
                {"customer_id": customer_id, "line_items": items, "discount": discount,
                 "valid_until": "2026-02-28", "notes": "delivery in 6 weeks"})


def submit(client, staff, quote) -> str:
    return post(client, staff["amy"], f"/api/v1/quotes/{quote['id']}/submit")["instance_id"]


def decide(client, headers, task, outcome="approve", opinion="ok"):
    response = client.post(f"/api/v1/tasks/{task['id']}/{outcome}", headers=headers, json={"opinion": opinion})
    assert response.status_code == 200, response.json


def approve_chain(client, staff, number, steps):
    for step in steps:
        task = only_task(client, staff[APPROVER[step]], number)
        assert task["element_id"] == step
        decide(client, staff[APPROVER[step]], task, opinion=f"{step} agrees")


def countersign(client, staff, number, finance="approve", legal="approve"):
    fay, leo = only_task(client, staff["fay"], number), only_task(client, staff["leo"], number)
    assert fay["element_id"] == leo["element_id"] == "countersign"
    assert fay["candidate_groups"] == ["finance"] and leo["candidate_groups"] == ["legal"]
    decide(client, staff["fay"], fay, finance, "budget fine")
    if finance == "approve":
        decide(client, staff["leo"], leo, legal, "contract fine")


def nobody_has_work(client, staff, number):
    for username in APPROVER.values():
        assert inbox(client, staff[username], business_key=number) == []


ROUTES = [
    # amount, discount %, approval steps in order (+ countersign)
    (100_000, 5, SMALL, False),
    (100_000, 10, SMALL, False),  # 10% is still the standard discount
    (100_000, 15, [*SMALL, "sales_director"], False),
    (100_000, 20, [*SMALL, "sales_director"], False),
    (100_000, 25, [*SMALL, "sales_director", "general_manager"], False),
    (500_000, 0, SMALL, False),
    (600_000, 0, LARGE, False),
    (600_000, 25, LARGE, False),
    (1_000_000, 0, LARGE, False),
    (1_200_000, 0, [*LARGE, "vice_president"], True),
]


@SQLITE_ONLY
@pytest.mark.parametrize(("amount", "discount", "steps", "countersigned"), ROUTES)
def test_routing_by_amount_and_discount(client, staff, amount, discount, steps, countersigned):
    quote = new_quote(client, staff, amount, discount)
    assert quote["amount"] == amount and quote["number"].startswith("Q-2026-")
    submit(client, staff, quote)
    approve_chain(client, staff, quote["number"], steps)
    if countersigned:
        countersign(client, staff, quote["number"])
    nobody_has_work(client, staff, quote["number"])
    approved = get(client, staff["amy"], f"/api/v1/quotes/{quote['id']}")
    assert approved["status"] == "approved" and approved["has_pdf"] is True
    expected = steps + (["countersign", "countersign"] if countersigned else [])
    assert [a["step"] for a in approved["approvals"]] == expected
    assert {a["outcome"] for a in approved["approvals"]} == {"approved"}


def test_large_deal_end_to_end_with_decision_trace_and_pdf(client, staff, users):
    quote = new_quote(client, staff, 1_200_000, 5)
    instance_id = submit(client, staff, quote)
    approve_chain(client, staff, quote["number"], [*LARGE, "vice_president"])
    countersign(client, staff, quote["number"])
    instance = get(client, users["admin"], f"/api/v1/process-instances/{instance_id}")
    assert instance["status"] == "completed" and instance["path"][-1] == "end_approved"
    history = get(client, users["admin"], f"/api/v1/process-instances/{instance_id}/history")
    [rule] = [h for h in history if h["element_id"] == "route" and h["event"] == "gateway.decision"]
    [evaluation] = rule["data"]["evaluations"]
    assert evaluation["expression"] == "rule quote_routing v0"
    assert evaluation["values"] == {"amount": 1_200_000, "discount": 5}
    assert evaluation["result"]["vice_president"] is True and evaluation["result"]["sales_manager"] is False
    pdf = client.get(f"/api/v1/process-instances/{instance_id}/documents/quote.pdf", headers=staff["amy"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert client.get(f"/api/v1/quotes/{quote['id']}/pdf", headers=staff["amy"]).data == pdf.data
    outsider = client.get(f"/api/v1/process-instances/{instance_id}/documents/quote.pdf", headers=users["eve"])
    assert outsider.status_code == 403
    notes = get(client, staff["amy"], "/api/v1/notifications")
    assert any(n["title"] == f"Quote approved: {quote['number']}" for n in notes), notes


def test_countersign_rejected_by_finance_goes_back_to_the_account_manager(client, staff):
    quote = new_quote(client, staff, 1_500_000, 0)
    submit(client, staff, quote)
    approve_chain(client, staff, quote["number"], [*LARGE, "vice_president"])
    countersign(client, staff, quote["number"], finance="reject")
    assert inbox(client, staff["leo"], business_key=quote["number"]) == []
    revise = only_task(client, staff["amy"], quote["number"])
    assert revise["element_id"] == "revise"
    assert get(client, staff["amy"], f"/api/v1/quotes/{quote['id']}")["status"] == "revising"


@SQLITE_ONLY
def test_reject_revise_resubmit_takes_the_new_route(client, staff):
    quote = new_quote(client, staff, 600_000, 0)
    submit(client, staff, quote)
    approve_chain(client, staff, quote["number"], ["technical_director"])
    decide(client, staff["sid"], only_task(client, staff["sid"], quote["number"]), "reject", "price too low")
    record = get(client, staff["amy"], f"/api/v1/quotes/{quote['id']}")
    assert record["status"] == "revising"
    assert [(a["step"], a["outcome"], a["opinion"]) for a in record["approvals"]][-1] == \
        ("sales_director", "rejected", "price too low")
    revise = only_task(client, staff["amy"], quote["number"])
    bad = complete(client, staff["amy"], revise, {"decision": "maybe", "discount": 120}, expected=422)
    assert set(bad.json["errors"]) == {"decision", "discount"}
    complete(client, staff["amy"], revise, {"decision": "resubmit", "amount": 450_000, "discount": 5,
                                            "notes": "smaller scope"})
    approve_chain(client, staff, quote["number"], SMALL)
    final = get(client, staff["amy"], f"/api/v1/quotes/{quote['id']}")
    assert final["status"] == "approved" and final["amount"] == 450_000 and final["discount"] == 5
    assert [a["step"] for a in final["approvals"]] == ["technical_director", "sales_director", "sales_manager"]


@SQLITE_ONLY
def test_withdraw_ends_without_pdf(client, staff):
    quote = new_quote(client, staff, 100_000, 0)
    instance_id = submit(client, staff, quote)
    decide(client, staff["sam"], only_task(client, staff["sam"], quote["number"]), "reject", "no budget")
    complete(client, staff["amy"], only_task(client, staff["amy"], quote["number"]), {"decision": "withdraw"})
    record = get(client, staff["amy"], f"/api/v1/quotes/{quote['id']}")
    assert record["status"] == "withdrawn" and record["has_pdf"] is False
    assert record["processes"][0]["status"] == "completed" and record["open_tasks"] == []
    assert client.get(f"/api/v1/quotes/{quote['id']}/pdf", headers=staff["amy"]).status_code == 404
    path = get(client, staff["amy"], f"/api/v1/process-instances/{instance_id}")["path"]
    assert path[-1] == "end_withdrawn"


@SQLITE_ONLY
def test_submitted_quote_is_frozen_and_shows_its_open_task(client, staff):
    quote = new_quote(client, staff, 100_000, 0)
    submit(client, staff, quote)
    frozen = client.patch(f"/api/v1/quotes/{quote['id']}", headers=staff["amy"], json={"discount": 3})
    assert frozen.status_code == 409
    again = client.post(f"/api/v1/quotes/{quote['id']}/submit", headers=staff["amy"])
    assert again.status_code == 409
    record = get(client, staff["amy"], f"/api/v1/quotes/{quote['id']}")
    assert [t["element_id"] for t in record["open_tasks"]] == ["sales_manager"]
    assert record["processes"][0]["process_key"] == "quote_approval"
    customer = get(client, staff["amy"], f"/api/v1/customers/{quote['customer_id']}")
    assert [(q["number"], q["status"], q["amount"]) for q in customer["quotes"]] == \
        [(quote["number"], "submitted", 100_000)]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@SQLITE_ONLY
def test_pdf_with_chinese_customer_and_approvers(client, staff):
    items = [{"product": "工业水泵 A型", "quantity": 3, "unit_price": 100_000},
             {"product": "安装服务", "quantity": 1, "unit_price": 300_000}]
    quote = new_quote(client, staff, 600_000, 15, customer="上海星辰科技有限公司", items=items)
    submit(client, staff, quote)
    approve_chain(client, staff, quote["number"], LARGE)
    response = client.get(f"/api/v1/quotes/{quote['id']}/pdf", headers=staff["amy"])
    assert response.status_code == 200
    text = pdf_text(response.data)
    for expected in ("上海星辰科技有限公司", "工业水泵", "李技术总监", "Sid Sales", "张总经理", "Amy 周",
                     "CNY 510,000.00", "2026-02-28", "technical_director agrees", quote["number"]):
        assert expected in text, expected


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_approval_step_reminds_then_escalates_to_the_approvers_supervisor(client, users, context):
    deploy_shipped(client, users["dora"], ("quote_approval",))
    staff = create_staff(context, supervisors={"sam": "gina"})
    quote = new_quote(client, staff, 100_000, 0)
    submit(client, staff, quote)
    task = only_task(client, staff["sam"], quote["number"])
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=staff["sam"]).status_code == 200
    due = datetime.fromisoformat(task["due_at"])
    assert due == context.clock.now() + timedelta(days=1)

    def rows(event):
        with context.uow() as uow:
            return [h.data for h in uow.session.scalars(select(HistoryEntry).where(
                HistoryEntry.event == event, HistoryEntry.element_id == "sales_manager"))]

    second = timedelta(seconds=1)
    remind = due - timedelta(hours=4)
    for moment, reminded, overdue in [(remind - second, 0, 0), (remind + second, 1, 0), (due - second, 1, 0),
                                      (due + second, 1, 1)]:
        context.clock.set(moment)
        escalation.run_due_escalations(context.uow)
        assert (len(rows("task.reminded")), len(rows("task.overdue"))) == (reminded, overdue), moment
    assert "user:gina" in rows("task.overdue")[0]["recipients"]
