"""Leads: assignment by rule and round-robin, the follow-up process, the public pool and the reclaim ban.

A new lead goes to a team chosen by the `lead_assignment` rule (region, industry) and, within the team, to the
member after the one who got the previous lead (a cursor row per team, version-checked so two concurrent
assignments cannot both take the same turn). The process (processes/lead_follow_up.bpmn) returns the lead to
the team's pool after 3 days without follow-up; whoever lost it may not claim it back for 30 days.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bpm.adapters.orm import Group, ProcessInstance, Task, User, UserGroup, task_status_is
from bpm.adapters.orm_records import Customer, Lead, LeadPoolEvent, TeamCursor
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services import records, rule_store
from bpm.services.handlers import handles
from bpm.services.quotes import completed_variables

PROCESS = "lead_follow_up"
POOL_STEP = "pool"
CONTACT_STEPS = ("first_contact", "follow_up")
RECLAIM_BAN = timedelta(days=30)
STATUSES = ("new", "contacted", "pooled", "converted", "disqualified")


def get_lead(uow: UnitOfWork, lead_id: int) -> Lead:
    lead = uow.session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    return lead


# --- assignment --------------------------------------------------------------------------------------------------


def team_for(uow: UnitOfWork, lead_fields: dict[str, Any]) -> str:
    team, _, _ = rule_store.evaluate_rule(uow, "lead_assignment", {"region": lead_fields.get("region"),
                                                                   "industry": lead_fields.get("industry")})
    if not isinstance(team, str) or not team:
        raise ValidationFailed("the lead_assignment rule gave no team", {"region": ["no team for this lead"]})
    return team


def team_members(uow: UnitOfWork, team: str) -> list[str]:
    query = (select(User.username).join(UserGroup, UserGroup.user_id == User.id)
             .join(Group, Group.id == UserGroup.group_id)
             .where(Group.name == team, User.active.is_(True)).order_by(User.username))
    return list(uow.session.scalars(query))


def next_owner(uow: UnitOfWork, team: str) -> str:
    """Round-robin: the member after the last one served (alphabetical order), wrapping around."""
    members = team_members(uow, team)
    if not members:
        raise ValidationFailed(f"team '{team}' has no active members", {"team": [f"add users to group '{team}'"]})
    cursor = uow.session.get(TeamCursor, team)
    if cursor is None:
        cursor = TeamCursor(team=team, last_member=None)
        uow.session.add(cursor)
    following = [m for m in members if cursor.last_member is None or m > cursor.last_member]
    cursor.last_member = (following or members)[0]
    uow.flush()
    return cursor.last_member


def create_lead(fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> tuple[Lead, str]:
    """Create the lead, assign it (rule + round-robin unless an owner is given) and start its process."""
    from bpm.services import instances

    records.require_write(actor)
    with uow:
        fields = dict(fields)
        team = fields.pop("team", None) or team_for(uow, fields)
        owner = fields.pop("owner", None) or next_owner(uow, team)
        now = uow.clock.now()
        lead = Lead(**fields, number=records.next_number(uow, "L"), team=team, owner=owner, status="new",
                    in_pool=False, created_at=now, updated_at=now)
        uow.session.add(lead)
        uow.flush()
        variables = {"lead_id": lead.id, "lead_number": lead.number, "lead_name": lead.name, "owner": owner,
                     "team": team, "region": lead.region, "industry": lead.industry, "source": lead.source}
        instance = instances.start_instance(instances.StartInstance(PROCESS, actor, lead.number, variables), uow)
        uow.commit()
        return lead, instance.instance.id


def update_lead(lead_id: int, fields: dict[str, Any], actor: Actor, uow: UnitOfWork) -> Lead:
    records.require_write(actor)
    with uow:
        lead = get_lead(uow, lead_id)
        for name, value in fields.items():
            setattr(lead, name, value)
        lead.updated_at = uow.clock.now()
        uow.commit()
        return lead


def describe_lead(uow: UnitOfWork, actor: Actor, lead_id: int) -> dict[str, Any]:
    records.require_read(actor)
    with uow:
        lead = get_lead(uow, lead_id)
        pool = list(uow.session.scalars(select(LeadPoolEvent).where(LeadPoolEvent.lead_id == lead_id)
                                        .order_by(LeadPoolEvent.id)))
        return {"lead": lead, "pool_history": pool, **records.linked_processes(uow, lead.number)}


# --- the pool ----------------------------------------------------------------------------------------------------


def reclaim_possible_from(uow: UnitOfWork, lead_id: int, username: str):
    """When `username` may claim this lead again (None: no ban)."""
    last_lost = uow.session.scalar(select(LeadPoolEvent.returned_at)
                                   .where(LeadPoolEvent.lead_id == lead_id, LeadPoolEvent.previous_owner == username)
                                   .order_by(LeadPoolEvent.returned_at.desc()).limit(1))
    return utc(last_lost) + RECLAIM_BAN if last_lost is not None else None


def claim_lead(lead_id: int, actor: Actor, uow: UnitOfWork) -> Lead:
    """Take a lead from the pool: the claimer must be in its team and not be banned from reclaiming it."""
    from bpm.services import tasks

    with uow:
        lead = get_lead(uow, lead_id)
        if not lead.in_pool:
            raise InvalidTransition(f"lead {lead.number} is not in the pool", owner=lead.owner)
        if not (actor.is_admin or (actor.may("tasks") and lead.team in actor.groups)):
            raise PermissionDenied(f"only members of '{lead.team}' may claim this lead")
        check_reclaim_ban(uow, lead, actor.username)
        task = _pool_task(uow, lead)
        tasks.complete_task(tasks.CompleteTask(task.id, actor, {"owner": actor.username}), uow)
        uow.commit()
        return lead


def check_reclaim_ban(uow: UnitOfWork, lead: Lead, username: str) -> None:
    available = reclaim_possible_from(uow, lead.id, username)
    if available is not None and uow.clock.now() < available:
        raise InvalidTransition(
            f"'{username}' lost lead {lead.number} to the pool and may claim it again from "
            f"{available.isoformat()}", available_from=available.isoformat())


def _pool_task(uow: UnitOfWork, lead: Lead) -> Task:
    task = uow.session.scalar(select(Task).where(Task.business_key == lead.number, Task.process_key == PROCESS,
                                                 Task.element_id == POOL_STEP, task_status_is("open")))
    if task is None:
        raise InvalidTransition(f"lead {lead.number} has no open pool step to claim")
    return task


# --- following the process ---------------------------------------------------------------------------------------


def _lead_of(uow: UnitOfWork, instance_id: str) -> Lead | None:
    uow.flush()  # the instance and its record may be new in this transaction
    instance = uow.session.get(ProcessInstance, instance_id)
    if instance is None or instance.process_key != PROCESS or not instance.business_key:
        return None
    return uow.session.scalar(select(Lead).where(Lead.number == instance.business_key))


@handles(events.TaskCreated)
def return_to_pool(event: events.TaskCreated, uow: UnitOfWork) -> None:
    if event.process_key != PROCESS or event.element_id != POOL_STEP:
        return
    lead = _lead_of(uow, event.instance_id)
    if lead is None:
        return
    uow.session.add(LeadPoolEvent(lead_id=lead.id, previous_owner=lead.owner, returned_at=uow.clock.now()))
    lead.owner, lead.in_pool, lead.status, lead.updated_at = None, True, "pooled", uow.clock.now()


@handles(events.TaskCompleted)
def follow_lead_step(event: events.TaskCompleted, uow: UnitOfWork) -> None:
    if event.process_key != PROCESS:
        return
    lead = _lead_of(uow, event.instance_id)
    if lead is None:
        return
    variables = completed_variables(uow, event.task_id)
    if event.element_id == POOL_STEP:
        # The ban holds whichever way the pool step is completed (claim endpoint or the generic task API):
        # raising here aborts the completing command's transaction.
        owner = variables.get("owner") or event.actor
        for username in {owner, event.actor}:
            check_reclaim_ban(uow, lead, username)
        _claimed(uow, lead, owner)
    elif event.element_id in CONTACT_STEPS:
        _contacted(uow, lead, event, variables)
    lead.updated_at = uow.clock.now()


def _claimed(uow: UnitOfWork, lead: Lead, owner: str) -> None:
    pending = uow.session.scalar(select(LeadPoolEvent).where(LeadPoolEvent.lead_id == lead.id,
                                                             LeadPoolEvent.claimed_by.is_(None))
                                 .order_by(LeadPoolEvent.id.desc()).limit(1))
    if pending is not None:
        pending.claimed_by, pending.claimed_at = owner, uow.clock.now()
    lead.owner, lead.in_pool, lead.status = owner, False, "contacted"


def _contacted(uow: UnitOfWork, lead: Lead, event: events.TaskCompleted, variables: dict[str, Any]) -> None:
    kind = variables.get("kind") if variables.get("kind") in records.INTERACTION_KINDS else "call"
    records.record_interaction(uow, {"kind": kind, "notes": variables.get("notes") or "", "lead_id": lead.id},
                               event.actor)
    outcome = variables.get("outcome")
    if outcome == "convert":
        _convert(uow, lead, variables)
    elif outcome == "disqualify":
        lead.status = "disqualified"
    else:
        lead.status = "contacted"


def _convert(uow: UnitOfWork, lead: Lead, variables: dict[str, Any]) -> None:
    """Conversion ends the process and turns the lead into a customer owned by its owner."""
    now = uow.clock.now()
    customer = Customer(name=variables.get("customer_name") or lead.name, industry=lead.industry,
                        region=lead.region, tier="standard", owner=lead.owner, last_interaction_at=now,
                        created_at=now, updated_at=now)
    uow.session.add(customer)
    uow.flush()
    lead.customer_id, lead.status = customer.id, "converted"
