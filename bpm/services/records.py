"""Customer records (customers, contacts, interactions), record numbers, and the links to their processes.

A process instance belongs to a record through its business key (the record's number), so a record's read
model lists its processes and open tasks without any foreign key into the engine's tables. The dormant-customer
check lives here too: a daily job (at BPM_DORMANT_CHECK_AT, run by the embedded scheduler or Celery beat) that
raises a task for the owner of a customer nobody talked to for 30 days.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bpm.adapters.orm import ProcessInstance, Task, User, task_status_is
from bpm.adapters.orm_records import Contact, Customer, Interaction, Lead, RecordNumber, Ticket
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from bpm.domain.model import Actor
from bpm.services.handlers import handles

log = logging.getLogger(__name__)

TIERS = ("standard", "silver", "gold", "strategic")
CONTACT_ROLES = ("decision_maker", "influencer", "user")
INTERACTION_KINDS = ("call", "visit", "email", "meeting")
DORMANT_AFTER = timedelta(days=30)
DORMANT_PROCESS = "dormant_customer"
SYSTEM = Actor("system", frozenset({"admin"}), frozenset())


# --- permissions -------------------------------------------------------------------------------------------------


def require_read(actor: Actor) -> None:
    if not actor.may("read"):
        raise PermissionDenied(f"'{actor.username}' may not read records")


def require_write(actor: Actor) -> None:
    if not actor.may("start"):
        raise PermissionDenied(f"'{actor.username}' may not change records")


# --- numbers and links -----------------------------------------------------------------------------------------


def next_number(uow: UnitOfWork, prefix: str) -> str:
    """Q-2026-0001, T-2026-0001, L-2026-0001: one counter row per prefix and year (version-checked)."""
    year = uow.clock.now().year
    row = uow.session.get(RecordNumber, (prefix, year))
    if row is None:
        row = RecordNumber(prefix=prefix, year=year, last=0)
        uow.session.add(row)
    row.last += 1
    try:
        uow.flush()  # the version column makes a concurrent increment fail here instead of reusing a number
    except IntegrityError as error:  # two first numbers of a year at once: the loser retries
        raise ConcurrencyConflict("another record took this number a moment ago; retry") from error
    return f"{prefix}-{year}-{row.last:04d}"


def linked_processes(uow: UnitOfWork, business_key: str) -> dict[str, list[dict[str, Any]]]:
    """The process instances of a record and their open tasks."""
    instances = uow.session.scalars(select(ProcessInstance).where(ProcessInstance.business_key == business_key)
                                    .order_by(ProcessInstance.started_at))
    tasks = uow.session.scalars(select(Task).where(Task.business_key == business_key, task_status_is("open"))
                                .order_by(Task.created_at))
    return {
        "processes": [{"id": i.id, "process_key": i.process_key, "status": i.status,
                       "started_at": utc(i.started_at), "ended_at": utc(i.ended_at)} for i in instances],
        "open_tasks": [{"id": t.id, "instance_id": t.instance_id, "element_id": t.element_id, "name": t.name,
                        "assignee": t.assignee, "candidate_groups": t.candidate_groups, "due_at": utc(t.due_at)}
                       for t in tasks],
    }


def display_names(uow: UnitOfWork, usernames: list[str]) -> dict[str, str]:
    rows = uow.session.execute(select(User.username, User.display_name).where(User.username.in_(usernames)))
    return {username: display or username for username, display in rows}


# --- customers ---------------------------------------------------------------------------------------------------


def customer_key(customer_id: int) -> str:
    return f"C-{customer_id}"


def get_customer(uow: UnitOfWork, customer_id: int) -> Customer:
    customer = uow.session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def existing_customer(uow: UnitOfWork, customer_id: int, field: str = "customer_id") -> Customer:
    """A customer referenced from another record: a missing one is bad input (422 naming the field)."""
    customer = uow.session.get(Customer, customer_id)
    if customer is None:
        raise ValidationFailed("unknown customer", {field: [f"customer {customer_id} does not exist"]})
    return customer


def create_customer(fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Customer:
    require_write(actor)
    with uow:
        now = uow.clock.now()
        customer = Customer(**fields, created_at=now, updated_at=now)
        customer.owner = customer.owner or actor.username
        uow.session.add(customer)
        uow.commit()
        return customer


def update_customer(customer_id: int, fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Customer:
    require_write(actor)
    with uow:
        customer = get_customer(uow, customer_id)
        for name, value in fields.items():
            setattr(customer, name, value)
        customer.updated_at = uow.clock.now()
        uow.commit()
        return customer


@dataclass
class RecordQuery:
    filters: dict[str, Any]
    limit: int = 50
    after: int | None = None
    search: str | None = None


def list_records(uow: UnitOfWork, actor: Actor, model, query: RecordQuery) -> list:
    """Equality filters on the given columns, optional name search, keyset pagination on id."""
    require_read(actor)
    with uow:
        statement = select(model)
        for name, value in query.filters.items():
            if value is not None:
                statement = statement.where(getattr(model, name) == value)
        if query.search and hasattr(model, "name"):
            statement = statement.where(model.name.ilike(f"%{query.search}%"))
        if query.after is not None:
            statement = statement.where(model.id > query.after)
        return list(uow.session.scalars(statement.order_by(model.id).limit(query.limit)))


def describe_customer(uow: UnitOfWork, actor: Actor, customer_id: int) -> dict[str, Any]:
    require_read(actor)
    with uow:
        customer = get_customer(uow, customer_id)
        contacts = list(uow.session.scalars(select(Contact).where(Contact.customer_id == customer_id)
                                            .order_by(Contact.id)))
        recent = list(uow.session.scalars(select(Interaction).where(Interaction.customer_id == customer_id)
                                          .order_by(Interaction.at.desc()).limit(20)))
        return {"customer": customer, "contacts": contacts, "interactions": recent,
                **related_records(uow, customer_id), **linked_processes(uow, customer_key(customer_id))}


def related_records(uow: UnitOfWork, customer_id: int) -> dict[str, list[dict[str, Any]]]:
    """The customer's quotes, tickets and converted leads (numbers and states): the start of a 360 view."""
    from bpm.adapters.orm_records import Quote

    def rows(model, *columns):
        query = select(model).where(model.customer_id == customer_id).order_by(model.id)
        return [{column: getattr(row, column) for column in ("id", "number", "status", *columns)}
                for row in uow.session.scalars(query)]

    return {"quotes": rows(Quote, "amount"), "tickets": rows(Ticket, "priority", "satisfaction_score"),
            "leads": rows(Lead)}


# --- contacts ----------------------------------------------------------------------------------------------------


def create_contact(fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Contact:
    require_write(actor)
    with uow:
        existing_customer(uow, fields["customer_id"])
        now = uow.clock.now()
        contact = Contact(**fields, created_at=now, updated_at=now)
        uow.session.add(contact)
        uow.commit()
        return contact


def get_contact(uow: UnitOfWork, contact_id: int) -> Contact:
    contact = uow.session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return contact


def update_contact(contact_id: int, fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Contact:
    require_write(actor)
    with uow:
        contact = get_contact(uow, contact_id)
        if "customer_id" in fields:
            existing_customer(uow, fields["customer_id"])
        for name, value in fields.items():
            setattr(contact, name, value)
        contact.updated_at = uow.clock.now()
        uow.commit()
        return contact


# --- interactions ------------------------------------------------------------------------------------------------


def create_interaction(fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Interaction:
    require_write(actor)
    with uow:
        interaction = record_interaction(uow, fields, actor.username)
        uow.commit()
        return interaction


def record_interaction(uow: UnitOfWork, fields: dict[str, Any], actor: str | None) -> Interaction:
    """Store an interaction and move the 'last talked to' marks of its customer and lead (inside a command)."""
    fields = dict(fields)
    if not any(fields.get(k) for k in ("customer_id", "lead_id", "ticket_id")):
        raise ValidationFailed("an interaction needs a customer, lead or ticket",
                               {"customer_id": ["give customer_id, lead_id or ticket_id"]})
    at = fields.pop("at", None) or uow.clock.now()
    customer_id = fields.get("customer_id") or _customer_of(uow, fields)
    if fields.get("customer_id"):
        existing_customer(uow, fields["customer_id"])
    interaction = Interaction(**{**fields, "customer_id": customer_id}, actor=actor, at=at)
    uow.session.add(interaction)
    _touch(uow, interaction)
    return interaction


def _customer_of(uow: UnitOfWork, fields: dict[str, Any]) -> int | None:
    if fields.get("ticket_id"):
        ticket = uow.session.get(Ticket, fields["ticket_id"])
        if ticket is None:
            raise ValidationFailed("unknown ticket", {"ticket_id": [f"ticket {fields['ticket_id']} does not exist"]})
        return ticket.customer_id
    if fields.get("lead_id"):
        lead = uow.session.get(Lead, fields["lead_id"])
        if lead is None:
            raise ValidationFailed("unknown lead", {"lead_id": [f"lead {fields['lead_id']} does not exist"]})
        return lead.customer_id
    return None


def _touch(uow: UnitOfWork, interaction: Interaction) -> None:
    if interaction.customer_id:
        customer = uow.session.get(Customer, interaction.customer_id)
        if customer.last_interaction_at is None or utc(customer.last_interaction_at) < utc(interaction.at):
            customer.last_interaction_at = interaction.at
    if interaction.lead_id:
        lead = uow.session.get(Lead, interaction.lead_id)
        lead.last_follow_up_at = interaction.at


# --- dormant customers -------------------------------------------------------------------------------------------


def time_of_day(text: str) -> time:
    """'HH:MM' (UTC) -> time: the setting that says when a daily job runs (BPM_DORMANT_CHECK_AT)."""
    hours, _, minutes = (text or "").strip().partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ValueError(f"a time of day is HH:MM (UTC), not {text!r}")
    return time(int(hours), int(minutes))


def daily_run_due(now: datetime, at: time, last_run_on: date | None) -> bool:
    """A daily job runs once per (UTC) day, on the first scheduler round at or after its time of day; a
    scheduler started later that day catches up at once."""
    now = utc(now)
    return last_run_on != now.date() and now.time() >= at


def dormant_idempotency_key(customer_id: int, day: date) -> str:
    return f"dormant-customer:{customer_key(customer_id)}:{day.isoformat()}"


def raise_dormant_customer_tasks(uow_factory: Callable[[], UnitOfWork]) -> int:
    """Start a "dormant customer" process for each owned customer without interaction for 30 days.

    Safe to run repeatedly and from two schedulers at once: a customer with a running dormant-customer process
    is skipped, and each start carries the idempotency key (customer, day), so a second run on the same day
    (even one that read the customers before the first committed) starts nothing. Each customer gets its own
    transaction, so one failure does not hold back the others. Returns how many were raised.
    """
    from bpm.services import instances

    raised = 0
    for customer_id, owner, name, last in _dormant_customers(uow_factory()):
        uow = uow_factory()
        command = instances.StartInstance(
            DORMANT_PROCESS, SYSTEM, customer_key(customer_id),
            {"customer_id": customer_id, "customer_name": name, "owner": owner,
             "last_interaction_at": utc(last).isoformat() if last else None},
            idempotency_key=dormant_idempotency_key(customer_id, utc(uow.clock.now()).date()))
        try:
            result = instances.start_instance(command, uow)
        except NotFound:
            log.warning("dormant customer check: the process '%s' is not deployed", DORMANT_PROCESS)
            return raised
        except IdempotencyConflict:  # another run raised this customer's task today
            continue
        raised += int(result.created)
    return raised


def _dormant_customers(uow: UnitOfWork) -> list[tuple]:
    with uow:
        cutoff = uow.clock.now() - DORMANT_AFTER
        last = func.coalesce(Customer.last_interaction_at, Customer.created_at)
        running = select(ProcessInstance.business_key).where(ProcessInstance.process_key == DORMANT_PROCESS,
                                                             ProcessInstance.status == "running")
        keys = {key for key in uow.session.scalars(running)}
        rows = uow.session.execute(select(Customer.id, Customer.owner, Customer.name, Customer.last_interaction_at)
                                   .where(Customer.owner.is_not(None), last <= cutoff).order_by(Customer.id))
        return [tuple(row) for row in rows if customer_key(row[0]) not in keys]


@handles(events.TaskCompleted)
def dormant_customer_contacted(event: events.TaskCompleted, uow: UnitOfWork) -> None:
    """Working the dormant-customer task is an interaction: the customer is no longer dormant."""
    if event.process_key != DORMANT_PROCESS:
        return
    instance = uow.session.get(ProcessInstance, event.instance_id)
    customer_id = _customer_id_from_key(instance.business_key if instance else None)
    if customer_id is None or uow.session.get(Customer, customer_id) is None:
        return
    from bpm.services.quotes import completed_variables

    variables = completed_variables(uow, event.task_id)
    kind = variables.get("kind") if variables.get("kind") in INTERACTION_KINDS else "call"
    record_interaction(uow, {"kind": kind, "notes": variables.get("notes") or "", "customer_id": customer_id},
                       event.actor)


def _customer_id_from_key(business_key: str | None) -> int | None:
    if not business_key or not business_key.startswith("C-") or not business_key[2:].isdigit():
        return None
    return int(business_key[2:])
