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


# --- time: escalations of user tasks and incidents (bpm.services.escalation, bpm.services.incidents) ---


@dataclass(frozen=True)
class _TaskEscalationEvent:
    """Common shape of escalation events. `notify` holds `user:<name>` / `group:<name>` entries; the same
    audience is split into `notify_users` and `notify_groups` for handlers that resolve recipients."""

    task_id: str
    instance_id: str
    process_key: str
    element_id: str
    name: str | None
    assignee: str | None
    notify: tuple[str, ...] = ()
    kind: str = ""
    notify_users: tuple[str, ...] = ()
    notify_groups: tuple[str, ...] = ()
    due_at: Any = None
    business_key: str | None = None


@dataclass(frozen=True)
class TaskReminder(_TaskEscalationEvent):
    """bpm.remindBefore reached: the assignee (or the candidates) are reminded before the due date."""


@dataclass(frozen=True)
class TaskOverdue(_TaskEscalationEvent):
    """The task passed its due date (bpm.overdueNotify, repeated every bpm.overdueRepeat)."""


@dataclass(frozen=True)
class TaskEscalated(_TaskEscalationEvent):
    """The task was moved (kind "reassigned": bpm.overdueReassign) or auto-completed ("auto_completed")."""


@dataclass(frozen=True)
class TaskDueChanged:
    """A task's due date was set, moved or removed (over the API, or when a step sent back is reopened); its
    escalation steps were planned again from the new date. `due_at` None: the task has no due date now."""

    task_id: str
    instance_id: str
    process_key: str
    element_id: str
    name: str | None
    assignee: str | None
    due_at: Any
    previous_due_at: Any
    changed_by: str | None
    reason: str
    changed_at: Any
    business_key: str | None = None


@dataclass(frozen=True)
class IncidentOpened:
    incident_id: int
    instance_id: str | None
    process_key: str | None
    element_id: str | None
    job_kind: str
    message: str
