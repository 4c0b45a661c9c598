"""Tickets (complaints): the record, starting the complaint process, and keeping the record's SLA times.

The process (processes/complaint_handling.bpmn) runs under the ticket number as business key; the customer's
reply is the message `customer_reply` correlated by that number (POST /api/v1/messages). Without a reply for
3 days (the boundary timer `no_reply` in the BPMN) the front-line service gets a "chase the customer's reply"
task: the customer agreed (go ahead and resolve) or the ticket is closed as no reply. Each step's due and done
times are copied into the ticket's `sla` so the record shows which SLA was met without reading history. A
high-priority complaint notifies the service directors at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bpm.adapters.orm import ProcessInstance, Task
from bpm.adapters.orm_records import Customer, Interaction, Ticket
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import NotFound
from bpm.domain.model import Actor
from bpm.services import records
from bpm.services.handlers import handles
from bpm.services.projection import record
from bpm.services.quotes import completed_variables

PROCESS = "complaint_handling"
PRIORITIES = ("low", "normal", "high")
CATEGORIES = ("product", "delivery", "installation", "billing", "general")
DIRECTORS = "service-directors"
STATUS_AFTER = {"register": "registered", "assign": "assigned", "plan": "planned", "tell": "awaiting_customer",
                "resolve": "resolved", "follow_up": "closed"}
EDITABLE_FIELDS = ("subject", "description", "priority", "category")
CHASE_STEP = "chase_reply"
STATUS_ON_CREATE = {CHASE_STEP: "chasing_customer", "resolve": "resolving"}


def get_ticket(uow: UnitOfWork, ticket_id: int) -> Ticket:
    ticket = uow.session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


def create_ticket(fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> tuple[Ticket, str]:
    """Create the ticket and start its complaint process in one transaction; returns (ticket, instance id)."""
    from bpm.services import instances

    records.require_write(actor)
    with uow:
        customer = records.existing_customer(uow, fields["customer_id"])
        now = uow.clock.now()
        ticket = Ticket(**fields, number=records.next_number(uow, "T"), status="open", sla={}, created_at=now,
                        updated_at=now)
        uow.session.add(ticket)
        uow.flush()
        command = instances.StartInstance(PROCESS, actor, ticket.number, process_variables(ticket, customer))
        instance = instances.start_instance(command, uow).instance
        if ticket.priority == "high":
            notify_directors(uow, ticket, instance.id, actor.username)
        uow.commit()
        return ticket, instance.id


def process_variables(ticket: Ticket, customer: Customer) -> dict[str, Any]:
    return {"ticket_id": ticket.id, "ticket_number": ticket.number, "customer_id": customer.id,
            "customer_name": customer.name, "subject": ticket.subject, "description": ticket.description,
            "priority": ticket.priority, "category": ticket.category}


def update_ticket(ticket_id: int, fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Ticket:
    records.require_write(actor)
    with uow:
        ticket = get_ticket(uow, ticket_id)
        became_high = fields.get("priority") == "high" and ticket.priority != "high"
        for name, value in fields.items():
            setattr(ticket, name, value)
        ticket.updated_at = uow.clock.now()
        if became_high:
            notify_directors(uow, ticket, _instance_id(uow, ticket.number), actor.username)
        uow.commit()
        return ticket


def describe_ticket(uow: UnitOfWork, actor: Actor, ticket_id: int) -> dict[str, Any]:
    records.require_read(actor)
    with uow:
        ticket = get_ticket(uow, ticket_id)
        interactions = list(uow.session.scalars(select(Interaction).where(Interaction.ticket_id == ticket_id)
                                                .order_by(Interaction.at)))
        return {"ticket": ticket, "interactions": interactions, **records.linked_processes(uow, ticket.number)}


def _instance_id(uow: UnitOfWork, business_key: str) -> str | None:
    return uow.session.scalar(select(ProcessInstance.id).where(ProcessInstance.business_key == business_key,
                                                               ProcessInstance.process_key == PROCESS)
                              .order_by(ProcessInstance.started_at.desc()).limit(1))


def notify_directors(uow: UnitOfWork, ticket: Ticket, instance_id: str | None, actor: str | None) -> None:
    """High priority: the service directors hear of it at once (in-app + configured channels + history)."""
    from bpm.services import notifications

    recipients = notifications.resolve_recipients(uow, [], [DIRECTORS])
    facts = {"name": f"{ticket.number} {ticket.subject}", "business_key": ticket.number, "process_key": PROCESS,
             "priority": ticket.priority, "at": uow.clock.now().isoformat()}
    notifications.notify(uow, "escalated", facts, recipients)
    if instance_id:
        record(uow, instance_id, "complaint.high_priority", actor,
               data={"notified_group": DIRECTORS, "recipients": [r[0] for r in recipients]})


# --- following the process ---------------------------------------------------------------------------------------


def _ticket_of(uow: UnitOfWork, instance_id: str) -> Ticket | None:
    uow.flush()  # the instance and its record may be new in this transaction
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None or instance.process_key != PROCESS or not instance.business_key:
        return None
    return uow.session.scalar(select(Ticket).where(Ticket.number == instance.business_key))


@handles(events.TaskCreated)
def start_sla_clock(event: events.TaskCreated, uow: UnitOfWork) -> None:
    if event.process_key != PROCESS:
        return
    ticket = _ticket_of(uow, event.instance_id)
    if ticket is None:
        return
    uow.session.flush()
    task = uow.session.get(Task, event.task_id)
    step = {"created_at": utc(task.created_at).isoformat(),
            "due_at": utc(task.due_at).isoformat() if task.due_at else None}
    ticket.sla = {**ticket.sla, event.element_id: step}
    ticket.status = STATUS_ON_CREATE.get(event.element_id, ticket.status)


@handles(events.TaskCompleted)
def follow_complaint_step(event: events.TaskCompleted, uow: UnitOfWork) -> None:
    if event.process_key != PROCESS:
        return
    ticket = _ticket_of(uow, event.instance_id)
    if ticket is None:
        return
    now = uow.clock.now()
    step = dict(ticket.sla.get(event.element_id) or {})
    due = step.get("due_at")
    step.update(done_at=utc(now).isoformat(), done_by=event.actor,
                met=None if due is None else utc(now).isoformat() <= due)
    ticket.sla = {**ticket.sla, event.element_id: step}
    _apply_step(uow, ticket, event, completed_variables(uow, event.task_id))
    ticket.status, ticket.updated_at = STATUS_AFTER.get(event.element_id, ticket.status), now


def _apply_step(uow: UnitOfWork, ticket: Ticket, event: events.TaskCompleted, variables: dict[str, Any]) -> None:
    if event.element_id == "register":
        if variables.get("priority") == "high" and ticket.priority != "high":
            ticket.priority = "high"
            notify_directors(uow, ticket, event.instance_id, event.actor)
        ticket.priority = variables.get("priority") or ticket.priority
        ticket.category = variables.get("category") or ticket.category
    elif event.element_id == "assign":
        ticket.engineer_group = variables.get("engineer_group") or ticket.engineer_group
    elif event.element_id == "resolve":
        ticket.closed_at = uow.clock.now()
    elif event.element_id == "follow_up" and variables.get("satisfaction_score") is not None:
        ticket.satisfaction_score = int(variables["satisfaction_score"])
    elif event.element_id == CHASE_STEP and variables.get("chase_outcome") == "close":
        ticket.status, ticket.closed_at = "closed_no_reply", uow.clock.now()
    notes = (variables.get("plan") or variables.get("message") or variables.get("resolution")
             or variables.get("chase_notes"))
    if notes:
        records.record_interaction(uow, {"kind": _kind(variables), "notes": notes, "ticket_id": ticket.id},
                                   event.actor)


def _kind(variables: dict[str, Any]) -> str:
    kind = variables.get("told_via") or variables.get("chased_via")
    return kind if kind in records.INTERACTION_KINDS else "email"
