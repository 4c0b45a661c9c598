"""Around a task: comments with @mentions, attachments, CC (抄送), deputies (out of office), saved filters,
and what happens when a task is created (deputy takes it, CC rows, approver dedupe).

Attachment bytes are stored under Settings.var_dir/attachments, never in the database row; they are served
only to people who may see the task.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bpm.adapters.orm import ProcessDefinition, ProcessInstance, Task, User
from bpm.adapters.orm_approvals import (
    ApprovalRecord,
    SavedFilter,
    Substitute,
    TaskAttachment,
    TaskCc,
    TaskComment,
    TaskSigner,
)
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain import events
from bpm.domain.errors import InvalidTransition, NotFound, PayloadTooLarge, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services import approval_notify, definitions
from bpm.services.handlers import handles
from bpm.services.projection import record

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ALLOWED_CONTENT_TYPES = frozenset({
    "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv",
    "application/msword", "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
})
MENTION = re.compile(r"@([A-Za-z0-9_.\-]+)")


# --- visibility -----------------------------------------------------------------------------------


def visible_task(uow, actor: Actor, task_id: str) -> Task:
    """The task if the actor may see it (worker, signer, CC'd, instance reader), else 404/403."""
    from bpm.services.tasks import get_task, may_see_task

    task = get_task(uow, task_id)
    if not may_see_task(uow, actor, task):
        raise PermissionDenied("you may not see this task")
    return task


def seen_through_approvals(uow, actor: Actor, task: Task) -> bool:
    """Signers, CC'd people, delegation owners and deputised users see a task too (read-only for CC)."""
    from bpm.services.approvals import is_signer

    if actor.username in (task.owner, task.substitute_for):
        return True
    if is_signer(uow, task.id, actor.username):
        return True
    return is_cc(uow, actor, task.id)


def reads_instance_through_approvals(uow, actor: Actor, instance_id: str) -> bool:
    """Whoever sees a task of the instance through approvals (CC'd, signer, delegation owner, deputised user,
    supervisor of an assignee) may read the instance too: its diagram and history. Reading only: acting needs
    the task's own checks."""
    tasks = select(Task.id).where(Task.instance_id == instance_id)
    supervised = select(User.username).where(User.supervisor == actor.username)
    if uow.session.scalar(tasks.where((Task.owner == actor.username) | (Task.substitute_for == actor.username)
                                      | Task.assignee.in_(supervised)).limit(1)) is not None:
        return True
    names = [f"u:{actor.username}"] + [f"g:{g}" for g in actor.groups]
    if uow.session.scalar(select(TaskCc.task_id).where(TaskCc.task_id.in_(tasks),
                                                       (TaskCc.kind + ":" + TaskCc.name).in_(names))
                          .limit(1)) is not None:
        return True
    return uow.session.scalar(select(TaskSigner.id).where(TaskSigner.task_id.in_(tasks),
                                                          TaskSigner.username == actor.username)
                              .limit(1)) is not None


def is_cc(uow, actor: Actor, task_id: str) -> bool:
    names = [("u", actor.username)] + [("g", g) for g in actor.groups]
    rows = uow.session.scalars(select(TaskCc.kind).where(TaskCc.task_id == task_id).where(
        (TaskCc.kind + ":" + TaskCc.name).in_([f"{k}:{n}" for k, n in names])))
    return rows.first() is not None


# --- comments -------------------------------------------------------------------------------------


def add_comment(task_id: str, actor: Actor, text: str, uow: UnitOfWork) -> TaskComment:
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("a comment needs text", {"text": ["must not be empty"]})
    with uow:
        task = visible_task(uow, actor, task_id)
        mentions = _known_users(uow, MENTION.findall(text))
        comment = TaskComment(task_id=task.id, instance_id=task.instance_id, author=actor.username, text=text,
                              mentions=mentions, created_at=uow.clock.now())
        uow.session.add(comment)
        record(uow, task.instance_id, "task.commented", actor.username, element_id=task.element_id,
               element_name=task.name, task_id=task.id, data={"text": text[:500], "mentions": mentions})
        approval_notify.users(uow, [m for m in mentions if m != actor.username],
                              f"{actor.username} mentioned you on {task.name}", text[:500], task)
        uow.commit()
        return comment


def list_comments(task_id: str, actor: Actor, uow: UnitOfWork) -> list[TaskComment]:
    with uow:
        visible_task(uow, actor, task_id)
        return list(uow.session.scalars(select(TaskComment).where(TaskComment.task_id == task_id)
                                        .order_by(TaskComment.id)))


def _known_users(uow, names: list[str]) -> list[str]:
    if not names:
        return []
    known = set(uow.session.scalars(select(User.username).where(User.username.in_(names))))
    return [n for n in dict.fromkeys(names) if n in known]


# --- attachments ----------------------------------------------------------------------------------


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


def add_attachment(task_id: str, actor: Actor, upload: Upload, uow: UnitOfWork) -> TaskAttachment:
    _check_upload(upload)
    with uow:
        task = visible_task(uow, actor, task_id)
        if task.status != "open":
            raise InvalidTransition(f"the task is {task.status}; attachments can only be added to open tasks")
        storage_name = uuid.uuid4().hex
        path = _attachment_dir(uow) / storage_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.data)
        row = TaskAttachment(task_id=task.id, instance_id=task.instance_id, filename=_safe_name(upload.filename),
                             content_type=upload.content_type, size=len(upload.data),
                             sha256=hashlib.sha256(upload.data).hexdigest(), storage_name=storage_name,
                             uploaded_by=actor.username, created_at=uow.clock.now())
        uow.session.add(row)
        record(uow, task.instance_id, "task.attachment_added", actor.username, element_id=task.element_id,
               element_name=task.name, task_id=task.id, data={"filename": row.filename, "size": row.size})
        try:
            uow.commit()
        except Exception:
            path.unlink(missing_ok=True)  # no row points at the file: do not leave it behind
            raise
        return row


def _check_upload(upload: Upload) -> None:
    if len(upload.data) > MAX_ATTACHMENT_BYTES:
        raise PayloadTooLarge(f"attachments are limited to {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB",
                              [{"field": "file", "message": "too large"}])
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise ValidationFailed(f"content type '{content_type}' is not allowed",
                               {"file": [f"allowed: {', '.join(sorted(ALLOWED_CONTENT_TYPES))}"]})
    upload.content_type = content_type
    if not upload.data:
        raise ValidationFailed("the file is empty", {"file": ["must not be empty"]})


def _safe_name(filename: str) -> str:
    name = Path(filename or "attachment").name.replace("\x00", "")
    return name[:255] or "attachment"


def _attachment_dir(uow) -> Path:
    return Path(uow.settings.var_dir) / "attachments"


def list_attachments(task_id: str, actor: Actor, uow: UnitOfWork) -> list[TaskAttachment]:
    with uow:
        visible_task(uow, actor, task_id)
        return list(uow.session.scalars(select(TaskAttachment).where(TaskAttachment.task_id == task_id)
                                        .order_by(TaskAttachment.id)))


def open_attachment(attachment_id: int, actor: Actor, uow: UnitOfWork) -> tuple[TaskAttachment, Path]:
    with uow:
        row = uow.session.get(TaskAttachment, attachment_id)
        if row is None:
            raise NotFound(f"attachment {attachment_id} not found")
        visible_task(uow, actor, row.task_id)
        path = _attachment_dir(uow) / row.storage_name
        if not path.is_file():
            raise NotFound(f"the file of attachment {attachment_id} is missing")
        return row, path


# --- CC (抄送) --------------------------------------------------------------------------------------


def parse_cc(text: str | None) -> list[tuple[str, str]]:
    """`user:alice, group:finance, bob` -> [("u", "alice"), ("g", "finance"), ("u", "bob")]."""
    entries = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        kind, _, name = part.partition(":") if ":" in part else ("user", "", part)
        kind = {"user": "u", "group": "g"}.get(kind.strip().lower())
        if kind and name.strip():
            entries.append((kind, name.strip()))
    return list(dict.fromkeys(entries))


# --- deputies (out of office) ---------------------------------------------------------------------


def set_substitute(actor: Actor, deputy: str, starts_at: datetime, ends_at: datetime,
                   uow: UnitOfWork) -> Substitute:
    if utc(ends_at) <= utc(starts_at):
        raise ValidationFailed("the range ends before it starts", {"ends_at": ["must be after starts_at"]})
    if deputy == actor.username:
        raise ValidationFailed("you cannot be your own deputy", {"deputy": ["must be someone else"]})
    with uow:
        if not _known_users(uow, [deputy]):
            raise ValidationFailed(f"unknown user '{deputy}'", {"deputy": ["unknown user"]})
        row = uow.session.get(Substitute, actor.username) or Substitute(username=actor.username)
        row.deputy, row.starts_at, row.ends_at, row.created_at = deputy, starts_at, ends_at, uow.clock.now()
        uow.session.add(row)
        uow.commit()
        return row


def get_substitute(actor: Actor, uow: UnitOfWork) -> Substitute:
    with uow:
        row = uow.session.get(Substitute, actor.username)
        if row is None:
            raise NotFound("you have no deputy set")
        return row


def clear_substitute(actor: Actor, uow: UnitOfWork) -> None:
    with uow:
        uow.session.execute(delete(Substitute).where(Substitute.username == actor.username))
        uow.commit()


def active_deputy(uow, username: str) -> str | None:
    row = uow.session.get(Substitute, username)
    now = uow.clock.now()
    if row is not None and utc(row.starts_at) <= now < utc(row.ends_at):
        return row.deputy
    return None


# --- saved filters --------------------------------------------------------------------------------


def save_filter(actor: Actor, name: str, query: dict[str, Any], uow: UnitOfWork) -> SavedFilter:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("a saved filter needs a name", {"name": ["must not be empty"]})
    with uow:
        row = SavedFilter(username=actor.username, name=name[:100], query=query, created_at=uow.clock.now())
        uow.session.add(row)
        try:
            uow.commit()
        except IntegrityError as error:
            raise InvalidTransition(f"you already have a filter named '{name}'") from error
        return row


def list_filters(actor: Actor, uow: UnitOfWork) -> list[SavedFilter]:
    with uow:
        return list(uow.session.scalars(select(SavedFilter).where(SavedFilter.username == actor.username)
                                        .order_by(SavedFilter.name)))


def delete_filter(actor: Actor, filter_id: int, uow: UnitOfWork) -> None:
    with uow:
        row = uow.session.get(SavedFilter, filter_id)
        if row is None or row.username != actor.username:
            raise NotFound(f"saved filter {filter_id} not found")
        uow.session.delete(row)
        uow.commit()


# --- when a task is created -----------------------------------------------------------------------


@handles(events.TaskCreated)
def on_task_created(event: events.TaskCreated, uow) -> None:
    """Deputy takes over, CC rows are written, and an already-given approval is reused (dedupe).

    The task's candidate rows follow whatever this changes (the database keeps them, migration 0015)."""
    task = uow.row_in_session(Task, event.task_id)
    if task is None or task.status != "open":
        return
    _hand_to_deputy(uow, task)
    _copy_in(uow, task, event.properties.get("bpm.cc"))
    _dedupe_approval(uow, task)


def _hand_to_deputy(uow, task: Task) -> None:
    deputy = active_deputy(uow, task.assignee) if task.assignee else None
    if deputy is None:
        return
    task.substitute_for, task.assignee = task.assignee, deputy
    record(uow, task.instance_id, "task.substituted", None, element_id=task.element_id, element_name=task.name,
           task_id=task.id, data={"original_assignee": task.substitute_for, "deputy": deputy})


def _copy_in(uow, task: Task, cc_text: str | None) -> None:
    entries = parse_cc(cc_text)
    for kind, name in entries:
        uow.session.add(TaskCc(task_id=task.id, kind=kind, name=name, created_at=uow.clock.now()))
    if entries:
        record(uow, task.instance_id, "task.cc", None, element_id=task.element_id, element_name=task.name,
               task_id=task.id, data={"cc": [f"{'user' if k == 'u' else 'group'}:{n}" for k, n in entries]})
        approval_notify.users(uow, [n for k, n in entries if k == "u"], f"For your information: {task.name}",
                              None, task)


def _dedupe_approval(uow, task: Task) -> None:
    if not task.assignee:
        return
    definition = _definition_of(uow, task)
    if not dedupe_enabled(definition):
        return
    uow.flush()  # approving runs an engine step, which reads the instance's open tasks from the database
    earlier = uow.session.scalar(select(ApprovalRecord.id).where(
        ApprovalRecord.instance_id == task.instance_id, ApprovalRecord.actor == task.assignee,
        ApprovalRecord.outcome == "approved", ApprovalRecord.task_id != task.id))
    if earlier is None:
        return
    from bpm.services.approvals import APPROVED, Decide, _finish

    actor = Actor(task.assignee, frozenset(), frozenset())
    _finish(uow, task, task.assignee, APPROVED,
            Decide(task.id, actor, APPROVED, "auto-approved: already approved an earlier step"), role="auto")


def _definition_of(uow, task: Task) -> ProcessDefinition:
    """The task's definition; its instance may be new in this transaction (not flushed yet)."""
    instance = uow.row_in_session(ProcessInstance, task.instance_id)
    if instance is None:
        raise NotFound(f"process instance '{task.instance_id}' not found")
    return uow.session.get(ProcessDefinition, instance.definition_id)


def dedupe_enabled(definition: ProcessDefinition) -> bool:
    """Process-level camunda:property `bpm.dedupeApprovers` = true (read once per definition version)."""
    return (definitions.process_properties(definition).get("bpm.dedupeApprovers") or "").strip().lower() == "true"
