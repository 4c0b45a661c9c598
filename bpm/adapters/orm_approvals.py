"""Tables of the approver inbox: approval records, signers, CC, comments, attachments, deputies, saved filters.

The engine knows nothing of 加签, 抄送 or 委派: these live beside the task projection so that the BPMN stays
as the designer drew it, and the inbox can query them with plain indexed lookups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bpm.adapters.orm import Base, BigId, JSONType


class ApprovalRecord(Base):
    """One approve/reject (or auto-approval) on a step: the trail printed on quotes and audits."""

    __tablename__ = "approval_records"
    __table_args__ = (Index("ix_approval_records_instance", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    element_id: Mapped[str] = mapped_column(String(255))
    step: Mapped[str] = mapped_column(String(255), default="")
    actor: Mapped[str] = mapped_column(String(150))
    outcome: Mapped[str] = mapped_column(String(20))  # approved | rejected
    opinion: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20), default="assignee")  # assignee | signer | auto
    at: Mapped[datetime]


class TaskSigner(Base):
    """A signer added to a task (加签): before, after or in parallel with its assignee."""

    __tablename__ = "task_signers"
    __table_args__ = (Index("ix_task_signers_user", "username", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(150))
    position: Mapped[str] = mapped_column(String(10))  # before | after | parallel | owner
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | removed | cancelled
    added_by: Mapped[str] = mapped_column(String(150))
    outcome: Mapped[str | None] = mapped_column(String(20))
    opinion: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime]
    acted_at: Mapped[datetime | None]


class TaskCc(Base):
    """Someone copied in on a task (抄送): a user or a whole group; read-only."""

    __tablename__ = "task_cc"
    __table_args__ = (Index("ix_task_cc_lookup", "kind", "name", "task_id"),)

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1), primary_key=True)  # "u" user, "g" group
    name: Mapped[str] = mapped_column(String(150), primary_key=True)
    created_at: Mapped[datetime]


class TaskComment(Base):
    __tablename__ = "task_comments"
    __table_args__ = (Index("ix_task_comments_task", "task_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(String(36))
    author: Mapped[str] = mapped_column(String(150))
    text: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime]


class TaskAttachment(Base):
    """Metadata of an uploaded file; the bytes live under var_dir/attachments/<storage_name>."""

    __tablename__ = "task_attachments"
    __table_args__ = (Index("ix_task_attachments_task", "task_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(String(36))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    sha256: Mapped[str] = mapped_column(String(64))
    storage_name: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[datetime]


class Substitute(Base):
    """A user's deputy for a date range (out of office): new tasks for the user go to the deputy."""

    __tablename__ = "substitutes"

    username: Mapped[str] = mapped_column(String(150), primary_key=True)
    deputy: Mapped[str] = mapped_column(String(150))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_at: Mapped[datetime]


class SavedFilter(Base):
    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("username", "name", name="uq_saved_filter_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), index=True)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime]


# Columns this module adds to the core `tasks` table (migration 0004_approvals); mapped on orm.Task.
TASK_COLUMNS = ("owner", "delegation_state", "substitute_for", "last_urged_at")
