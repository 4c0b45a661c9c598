"""Quotes: the record, submitting it to the quote approval process, following that process, and the PDF.

The process (processes/quote_approval.bpmn) is started with the quote number as business key. Handlers keep
the record in step with it inside the same transactions: every decision goes into `approvals` (step, actor,
outcome, opinion, time), a rejection puts the quote back to "revising", a revision updates amount and
discount, and completion either withdraws it or approves it and renders the PDF for the account manager.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bpm.adapters import pdf
from bpm.adapters.orm import HistoryEntry, ProcessInstance
from bpm.adapters.orm_records import Customer, Quote
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services import records
from bpm.services.handlers import handles

log = logging.getLogger(__name__)

PROCESS = "quote_approval"
REVISE_STEP = "revise"
EDITABLE = ("draft", "revising")
COMPANY = "Customer Operations Co., Ltd. 客户运营有限公司"


# --- record ------------------------------------------------------------------------------------------------------


def get_quote(uow: UnitOfWork, quote_id: int) -> Quote:
    quote = uow.session.get(Quote, quote_id)
    if quote is None:
        raise NotFound(f"quote {quote_id} not found")
    return quote


def line_total(items: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(str(i["quantity"])) * Decimal(str(i["unit_price"])) for i in items), Decimal(0))


def _plain_items(items: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Line items as JSON-friendly values (the API hands in Decimals)."""
    if items is None:
        return None
    return [{"product": i["product"], "quantity": float(i["quantity"]), "unit_price": float(i["unit_price"])}
            for i in items]


def _check_amount(fields: dict[str, Any]) -> None:
    if "line_items" in fields:
        fields["line_items"] = _plain_items(fields["line_items"])
    items = fields.get("line_items")
    if items and fields.get("amount") is None:
        fields["amount"] = line_total(items)
    elif items and Decimal(str(fields["amount"])) != line_total(items):
        raise ValidationFailed("the amount does not match the line items",
                               {"amount": [f"the line items add up to {line_total(items)}"]})
    if fields.get("amount") is None and "amount" in fields:
        raise ValidationFailed("amount is required", {"amount": ["give the amount or line items"]})


def create_quote(fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Quote:
    records.require_write(actor)
    fields = dict(fields)
    if fields.get("amount") is None and not fields.get("line_items"):
        raise ValidationFailed("a quote needs an amount or line items", {"amount": ["is required"]})
    _check_amount(fields)
    with uow:
        records.existing_customer(uow, fields["customer_id"])
        now = uow.clock.now()
        quote = Quote(**fields, number=records.next_number(uow, "Q"), status="draft", approvals=[],
                      created_at=now, updated_at=now)
        quote.owner = quote.owner or actor.username
        uow.session.add(quote)
        uow.commit()
        return quote


def update_quote(quote_id: int, fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Quote:
    records.require_write(actor)
    with uow:
        quote = get_quote(uow, quote_id)
        if quote.status not in EDITABLE:
            raise InvalidTransition(f"quote {quote.number} is {quote.status}: only draft or revising quotes change")
        merged = {"line_items": quote.line_items, "amount": quote.amount, **fields}
        if "line_items" in fields and "amount" not in fields:
            merged["amount"] = None
        _check_amount(merged)
        if "customer_id" in fields:
            records.existing_customer(uow, fields["customer_id"])
        normalised = {name: merged[name] for name in ("line_items", "amount")}
        for name, value in {**fields, **normalised}.items():
            setattr(quote, name, value)
        quote.updated_at = uow.clock.now()
        uow.commit()
        return quote


def submit_quote(quote_id: int, actor: Actor, uow: UnitOfWork) -> tuple[Quote, str]:
    """Start the approval process for a draft quote; returns the quote and the instance id."""
    from bpm.services import instances

    records.require_write(actor)
    with uow:
        quote = get_quote(uow, quote_id)
        if quote.status != "draft":
            raise InvalidTransition(f"quote {quote.number} is {quote.status}, not draft")
        customer = uow.session.get(Customer, quote.customer_id)
        command = instances.StartInstance(PROCESS, actor, quote.number, process_variables(quote, customer))
        result = instances.start_instance(command, uow)
        quote.status, quote.updated_at = "submitted", uow.clock.now()
        uow.commit()
        return quote, result.instance.id


def process_variables(quote: Quote, customer: Customer) -> dict[str, Any]:
    return {"quote_id": quote.id, "quote_number": quote.number, "customer_id": customer.id,
            "customer_name": customer.name, "amount": float(quote.amount), "discount": float(quote.discount),
            "currency": quote.currency, "account_manager": quote.owner,
            "valid_until": quote.valid_until.isoformat() if quote.valid_until else None,
            "line_items": quote.line_items, "notes": quote.notes}


def describe_quote(uow: UnitOfWork, actor: Actor, quote_id: int) -> dict[str, Any]:
    records.require_read(actor)
    with uow:
        quote = get_quote(uow, quote_id)
        customer = uow.session.get(Customer, quote.customer_id)
        return {"quote": quote, "customer": customer, **records.linked_processes(uow, quote.number)}


# --- the PDF -----------------------------------------------------------------------------------------------------


def quote_pdf(uow: UnitOfWork, actor: Actor, quote_id: int) -> Path:
    records.require_read(actor)
    with uow:
        return _existing_pdf(get_quote(uow, quote_id))


def instance_quote_pdf(uow: UnitOfWork, actor: Actor, instance_id: str) -> Path:
    """The quote PDF of a quote approval instance, for whoever may read that instance."""
    from bpm.services.instances import get_instance, may_read_instance

    with uow:
        instance = get_instance(uow, instance_id)
        if not may_read_instance(uow, actor, instance):
            raise PermissionDenied("you may not read this instance")
        quote = uow.session.scalar(select(Quote).where(Quote.number == instance.business_key))
        if instance.process_key != PROCESS or quote is None:
            raise NotFound("this instance has no quote document")
        return _existing_pdf(quote)


def _existing_pdf(quote: Quote) -> Path:
    if not quote.pdf_path or not Path(quote.pdf_path).is_file():
        raise NotFound(f"quote {quote.number} has no PDF yet (it is rendered when the quote is approved)")
    return Path(quote.pdf_path)


def render_pdf(uow: UnitOfWork, quote: Quote) -> Path:
    customer = uow.session.get(Customer, quote.customer_id)
    names = records.display_names(uow, [a["actor"] for a in quote.approvals] + [quote.owner or ""])
    document = pdf.QuoteDocument(
        company=COMPANY, number=quote.number, customer=customer.name, customer_region=customer.region,
        owner=names.get(quote.owner, quote.owner or ""), currency=quote.currency, line_items=quote.line_items,
        amount=Decimal(str(quote.amount)), discount=Decimal(str(quote.discount)),
        valid_until=quote.valid_until.isoformat() if quote.valid_until else None, notes=quote.notes or "",
        issued_at=uow.clock.now().date().isoformat(),
        approvals=[{**a, "actor_name": names.get(a["actor"], a["actor"]), "at": a["at"][:16].replace("T", " ")}
                   for a in quote.approvals])
    directory = _var_dir(uow) / "pdfs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{quote.number}.pdf"
    path.write_bytes(pdf.render_quote_pdf(document))
    return path


def _var_dir(uow: UnitOfWork) -> Path:
    return Path(uow.settings.var_dir) if uow.settings is not None else Path("var")


# --- following the process ---------------------------------------------------------------------------------------


def _quote_of(uow: UnitOfWork, instance_id: str) -> Quote | None:
    uow.flush()  # the instance and its record may be new in this transaction
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None or not instance.business_key:
        return None
    return uow.session.scalar(select(Quote).where(Quote.number == instance.business_key))


def completed_variables(uow: UnitOfWork, task_id: str) -> dict[str, Any]:
    """The variables a task was completed with (from its history row, written in this same transaction)."""
    uow.flush()
    row = uow.session.scalar(select(HistoryEntry).where(HistoryEntry.task_id == task_id,
                                                        HistoryEntry.event == "task.completed")
                             .order_by(HistoryEntry.id.desc()).limit(1))
    return dict((row.data or {}).get("variables") or {}) if row is not None else {}


@handles(events.TaskCompleted)
def follow_quote_step(event: events.TaskCompleted, uow: UnitOfWork) -> None:
    if event.process_key != PROCESS:
        return
    quote = _quote_of(uow, event.instance_id)
    if quote is None:
        return
    variables = completed_variables(uow, event.task_id)
    if event.element_id == REVISE_STEP:
        _apply_revision(quote, variables)
    else:
        _add_approval(uow, quote, event, variables)
    quote.updated_at = uow.clock.now()


def _apply_revision(quote: Quote, variables: dict[str, Any]) -> None:
    if variables.get("decision") == "withdraw":
        quote.status = "withdrawn"
        return
    for name in ("amount", "discount"):
        if variables.get(name) is not None:
            setattr(quote, name, Decimal(str(variables[name])))
    if variables.get("line_items"):
        quote.line_items = variables["line_items"]
    if variables.get("notes"):
        quote.notes = variables["notes"]
    quote.status = "submitted"


def _add_approval(uow: UnitOfWork, quote: Quote, event: events.TaskCompleted, variables: dict[str, Any]) -> None:
    approved = variables.get("approved")
    outcome = variables.get("outcome") or ("approved" if approved else "rejected")
    entry = {"step": event.element_id, "actor": event.actor, "outcome": outcome,
             "opinion": variables.get("opinion"), "at": utc(uow.clock.now()).isoformat()}
    quote.approvals = [*quote.approvals, entry]
    if outcome != "approved":
        quote.status = "revising"


@handles(events.InstanceCompleted)
def finish_quote(event: events.InstanceCompleted, uow: UnitOfWork) -> None:
    if event.process_key != PROCESS:
        return
    quote = _quote_of(uow, event.instance_id)
    if quote is None or quote.status == "withdrawn":
        return
    quote.status, quote.updated_at = "approved", uow.clock.now()
    quote.pdf_path = str(render_pdf(uow, quote))
    _notify_owner(uow, quote, event.instance_id)


def _notify_owner(uow: UnitOfWork, quote: Quote, instance_id: str) -> None:
    from bpm.services import notifications

    notifications.TITLES.setdefault("quote_approved", {"en": "Quote approved: {name}", "zh": "报价已批准：{name}"})
    notifications.INTROS.setdefault("quote_approved", "The quote {name} was approved; its PDF is ready.")
    facts = {"name": quote.number, "business_key": quote.number, "process_key": PROCESS,
             "instance_id": instance_id, "document": f"/api/v1/quotes/{quote.id}/pdf",
             "at": uow.clock.now().isoformat()}
    notifications.notify(uow, "quote_approved", facts, notifications.resolve_recipients(uow, [quote.owner], []))
