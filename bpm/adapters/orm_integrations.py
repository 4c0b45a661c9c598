"""Tables for integrators and designers: message subscriptions and buffer, webhooks, saved scenarios.

Messages are routed by database lookups (which instance waits for which message, with which business key and
correlation values) so a POST /messages never has to deserialize workflows that are not waiting for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bpm.adapters.orm import Base, BigId, JSONType


class MessageSubscription(Base):
    """An instance waiting for a message now; rewritten from every snapshot of the instance."""

    __tablename__ = "message_subscriptions"
    __table_args__ = (Index("ix_message_subscriptions_name", "message_name", "business_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), index=True)
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    message_name: Mapped[str] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    correlation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # scalar variables at wait time
    created_at: Mapped[datetime]


class MessageStartEvent(Base):
    """A deployed definition version that a message starts (indexed at deploy)."""

    __tablename__ = "message_start_events"
    __table_args__ = (UniqueConstraint("definition_id", "message_name", name="uq_message_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id", ondelete="CASCADE"))
    process_key: Mapped[str] = mapped_column(String(255), index=True)
    message_name: Mapped[str] = mapped_column(String(255), index=True)


class BufferedMessage(Base):
    """A message nobody waited for, kept until `expires_at` for the first instance that starts waiting."""

    __tablename__ = "message_buffer"
    __table_args__ = (Index("ix_message_buffer_name", "name", "delivered_at", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    instance_id: Mapped[str | None] = mapped_column(String(36))
    correlation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sent_by: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    delivered_to: Mapped[str | None] = mapped_column(String(36))


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    process_key: Mapped[str | None] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20), default="generic")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One delivery attempt series of one event to one subscription (the outbox row does the sending)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(50))
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(255))
    outbox_id: Mapped[str | None] = mapped_column(String(64))
    redelivery_of: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class SavedScenario(Base):
    """A simulation scenario kept next to a process key; every new upload of the key must still pass it."""

    __tablename__ = "process_scenarios"
    __table_args__ = (UniqueConstraint("process_key", "name", name="uq_scenario_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    expect: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime]
