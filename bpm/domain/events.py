"""Domain events (past tense). Services publish them; handlers turn them into rows of the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstanceStarted:
    instance_id: str
    process_key: str
    business_key: str | None
    actor: str | None


@dataclass(frozen=True)
class InstanceCompleted:
    instance_id: str
    process_key: str
    business_key: str | None


@dataclass(frozen=True)
class InstanceCancelled:
    instance_id: str
    process_key: str
    business_key: str | None
    actor: str | None
    reason: str | None = None


@dataclass(frozen=True)
class TaskCreated:
    task_id: str
    instance_id: str
    process_key: str
    element_id: str
    name: str | None
    assignee: str | None
    candidate_groups: tuple[str, ...] = ()
    candidate_users: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TaskCompleted:
    task_id: str
    instance_id: str
    process_key: str
    element_id: str
    actor: str | None


@dataclass(frozen=True)
class TaskCancelled:
    task_id: str
    instance_id: str
    element_id: str


@dataclass(frozen=True)
class TimerScheduled:
    instance_id: str
    element_id: str
    due_at: Any
