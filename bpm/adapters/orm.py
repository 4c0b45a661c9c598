"""Tables of the core: identity, definitions, instances, the task projection, history and timers.

The workflow state is one JSON text per instance guarded by a version column (optimistic locking); everything
an inbox or a scheduler needs to query is projected into narrow indexed tables so that no query ever has to
deserialize a workflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UTCDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: UTCDateTime}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    supervisor: Mapped[str | None] = mapped_column(String(150))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]

    groups: Mapped[list[Group]] = relationship(secondary="user_groups", back_populates="members", lazy="selectin")


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")

    members: Mapped[list[User]] = relationship(secondary="user_groups", back_populates="groups", lazy="select")


class UserGroup(Base):
    __tablename__ = "user_groups"
    __table_args__ = (Index("ix_user_groups_group", "group_id", "user_id"),)  # a group's members

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[list[Any] | None] = mapped_column(JSONType)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ProcessDefinition(Base):
    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_definition_key_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255), default="")
    bpmn_xml: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[str] = mapped_column(Text)
    model: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checksum: Mapped[str] = mapped_column(String(64))
    deployed_by: Mapped[str | None] = mapped_column(String(150))
    deployed_at: Mapped[datetime]


class ProcessInstance(Base):
    __tablename__ = "process_instances"
    __table_args__ = (
        Index("ix_instances_key_status", "process_key", "status"),
        Index("ix_instances_started_by", "started_by", "started_at", "id"),  # "my requests", newest first
        UniqueConstraint("started_by", "idempotency_key", name="uq_instance_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    state_json: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    started_by: Mapped[str | None] = mapped_column(String(150))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    incident: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __mapper_args__ = {"version_id_col": version}


class InstanceArchive(Base):
    """Append-only: the finished tasks an instance's state let go (bpm.engine "archive"), one chunk per row, in
    order. Read only for what needs the whole history: the path taken, send-back to an early step, migration."""

    __tablename__ = "instance_archive"
    __table_args__ = (Index("ix_instance_archive_instance", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    tasks: Mapped[str] = mapped_column(Text)


class Task(Base):
    """The projection of one human task: what the inbox lists, filters and sorts on."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_assignee_open", "assignee", "status", "due_at"),
        Index("ix_tasks_status_due", "status", "due_at", "id"),
        Index("ix_tasks_instance", "instance_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(20))  # open | completed | cancelled
    assignee: Mapped[str | None] = mapped_column(String(150))
    candidate_groups: Mapped[list[Any]] = mapped_column(default=list)
    candidate_users: Mapped[list[Any]] = mapped_column(default=list)
    due_at: Mapped[datetime | None]
    priority: Mapped[int] = mapped_column(Integer, default=50)
    form_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(150))
    # Approver inbox (migration 0004_approvals): delegation owner/state, the user a deputy stands in for.
    owner: Mapped[str | None] = mapped_column(String(150))
    delegation_state: Mapped[str | None] = mapped_column(String(20))  # pending | resolved
    substitute_for: Mapped[str | None] = mapped_column(String(150))
    last_urged_at: Mapped[datetime | None]


TASK_STATUSES = ("open", "completed", "cancelled")  # the values of Task.status


def task_status_is(status: str):
    """`tasks.status = 'status'` with the status written into the SQL text, not bound. The partial indexes of
    `tasks` (ix_tasks_open_assignee_due and ix_tasks_open_business_key for 'open', ix_tasks_completed_by for
    'completed') serve a prepared statement's generic plan only when its text names the status: with the status
    bound, PostgreSQL cannot prove an index's predicate, so it plans each execution anew, or a generic plan reads
    every open task (BENCHMARKS.md, "Engine floor vs server", fifteenth round). Only known statuses are written."""
    if status not in TASK_STATUSES:
        raise ValueError(f"unknown task status {status!r}")
    return Task.status == literal_column(f"'{status}'")


class TaskCandidate(Base):
    """One row per candidate group and user of a task, so "claimable by me" is an index lookup.

    The database's own index of `tasks` by candidate: triggers (migration 0015) write a task's rows from its
    `candidate_groups` and `candidate_users` when the task is inserted, replace them when either list changes, and
    keep `is_open` and `due_at` in step with the task. The application only reads them."""

    __tablename__ = "task_candidates"
    __table_args__ = (Index("ix_task_candidates_lookup", "kind", "name", "task_id",
                            postgresql_include=["instance_id"]),)

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1), primary_key=True)  # "g" group, "u" user
    name: Mapped[str] = mapped_column(String(150), primary_key=True)
    # The task's instance (migration 0014): an approver's instances are found from their candidate rows alone.
    instance_id: Mapped[str] = mapped_column(String(36))
    # Approver inbox (migration 0004_approvals): a copy of the task's due date and whether the task is claimable
    # (open and unassigned, migration 0015), so "claimable through my group, by due date" is an ordered index walk
    # and its count an index-only scan.
    due_at: Mapped[datetime | None]
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)


class HistoryEntry(Base):
    """Append-only: what happened to an instance, who did it and, for gateways, why."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_instance", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str | None] = mapped_column(String(150))
    element_id: Mapped[str | None] = mapped_column(String(255))
    element_name: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Timer(Base):
    """A waiting timer of an instance; the scheduler polls `due_at` of waiting rows only."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(30))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | fired
    created_at: Mapped[datetime]


def load_all_models() -> None:
    """Import every `bpm.adapters.orm_*` module so all tables are on Base.metadata (migrations, tests)."""
    import importlib
    import pkgutil

    import bpm.adapters as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("orm_"):
            importlib.import_module(f"bpm.adapters.{module.name}")
