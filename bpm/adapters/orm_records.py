"""Tables of the customer records the shipped processes work on, and of the business rules they consult.

Records are linked to process instances by their number (Q-2026-0001, T-2026-0001, L-2026-0001), which is the
instance's business key: no foreign key into the engine's tables, so records outlive instances and a record
can have several processes over time. Rules are json-logic documents, versioned: every PUT adds a version row.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bpm.adapters.orm import Base, BigId, JSONType

Money = Numeric(16, 2)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_owner", "owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(20), default="standard")
    owner: Mapped[str | None] = mapped_column(String(150))
    key_contact_birthday: Mapped[date | None] = mapped_column(Date)
    last_interaction_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(30))  # decision_maker | influencer | user
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_pool", "in_pool", "team"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(150))
    owner: Mapped[str | None] = mapped_column(String(150), index=True)
    status: Mapped[str] = mapped_column(String(20), default="new")  # new|contacted|converted|disqualified
    in_pool: Mapped[bool] = mapped_column(default=False)
    last_follow_up_at: Mapped[datetime | None]
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LeadPoolEvent(Base):
    """One row each time a lead goes back to the pool: who lost it and when (the reclaim ban reads this)."""

    __tablename__ = "lead_pool_events"
    __table_args__ = (Index("ix_lead_pool_events_lead", "lead_id", "previous_owner"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    previous_owner: Mapped[str | None] = mapped_column(String(150))
    returned_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(150))
    claimed_at: Mapped[datetime | None]


class Quote(Base):
    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    owner: Mapped[str | None] = mapped_column(String(150), index=True)
    line_items: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    amount: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=0)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    valid_until: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    approvals: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    pdf_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[str] = mapped_column(String(10), default="normal")  # low | normal | high
    category: Mapped[str] = mapped_column(String(50), default="general")
    status: Mapped[str] = mapped_column(String(20), default="open")
    engineer_group: Mapped[str | None] = mapped_column(String(150))
    sla: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # step -> due / done times
    satisfaction_score: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_customer", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # call | visit | email | meeting
    notes: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str | None] = mapped_column(String(150))
    at: Mapped[datetime]
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)


class RecordNumber(Base):
    """The last number handed out per prefix and year (Q-2026-0007)."""

    __tablename__ = "record_numbers"

    prefix: Mapped[str] = mapped_column(String(5), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class TeamCursor(Base):
    """Round-robin position within a team: the member who got the last lead."""

    __tablename__ = "team_cursors"

    team: Mapped[str] = mapped_column(String(150), primary_key=True)
    last_member: Mapped[str | None] = mapped_column(String(150))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class Rule(Base):
    """The current version of a business rule (json-logic document)."""

    __tablename__ = "rules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_by: Mapped[str | None] = mapped_column(String(150))
    updated_at: Mapped[datetime]


class RuleVersion(Base):
    """Every version ever saved, so a decision in an instance's history can be traced to the rule it used."""

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_rule_versions"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_by: Mapped[str | None] = mapped_column(String(150))
    updated_at: Mapped[datetime]
