"""Tables of delivery: the transactional outbox and the per-user in-app notifications.

Services write outbox rows in the same transaction as the state change that causes them; a relay publishes
them and a consumer delivers each one idempotently, so a crash anywhere loses nothing and repeats nothing in
effect. In-app notifications are plain rows a user reads through the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bpm.adapters.orm import Base, BigId, JSONType


class OutboxMessage(Base):
    """One message to deliver on one channel; `status` moves pending -> published -> delivered | failed."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(30))  # email | webhook | inapp | dingtalk | wecom
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class Notification(Base):
    """An in-app notification of one user (the bell icon): unread while `read_at` is empty."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "username", "read_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(150))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
