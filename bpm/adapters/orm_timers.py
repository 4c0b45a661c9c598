"""Tables of the time area: timer start schedules, task escalation deadlines and incidents.

Each is a narrow table polled on `(status, due)` so that the schedulers' cost depends on what is due, never on
how much is pending; the rows are written in the same transaction as the instance or task they belong to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bpm.adapters.orm import Base, BigId


class TimerSchedule(Base):
    """When a timer start event of a deployed version next creates an instance."""

    __tablename__ = "timer_schedules"
    __table_args__ = (Index("ix_timer_schedules_due", "status", "next_due_at"),
                      Index("ix_timer_schedules_key", "process_key", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    process_key: Mapped[str] = mapped_column(String(255))
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id", ondelete="CASCADE"))
    element_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))  # timeDate | timeDuration | timeCycle
    expression: Mapped[str] = mapped_column(Text)
    next_due_at: Mapped[datetime | None]
    remaining: Mapped[int] = mapped_column(Integer)  # occurrences left; -1 = unbounded cycle
    interval_seconds: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | done | replaced
    started_count: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class TaskDeadline(Base):
    """One escalation step of a user task (remind, overdue, reassign, timeout) and when it is due."""

    __tablename__ = "task_deadlines"
    __table_args__ = (Index("ix_task_deadlines_due", "status", "due_at"),
                      Index("ix_task_deadlines_task", "task_id", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))  # remind | overdue | reassign | timeout
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | done | cancelled
    repeat: Mapped[str | None] = mapped_column(String(50))  # ISO duration between repeated overdue notices
    fired_count: Mapped[int] = mapped_column(Integer, default=0)
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the task's bpm.* properties
    created_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]


class Incident(Base):
    """A background job or engine step that failed: what, where, why, and when it is tried again."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_job", "job_kind", "job_id", "resolved_at"),
                      Index("ix_incidents_open", "resolved_at", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    process_key: Mapped[str | None] = mapped_column(String(255))
    element_id: Mapped[str | None] = mapped_column(String(255))
    element_name: Mapped[str | None] = mapped_column(String(255))
    job_kind: Mapped[str] = mapped_column(String(30))  # timer | escalation | timer_start | service_task ...
    job_id: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # None: only a manual retry runs it again
    created_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(150))
    resolution: Mapped[str | None] = mapped_column(Text)
