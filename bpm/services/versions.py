"""Versions of a process: what changed between two of them, and moving running instances to a newer one.

Migration works where element ids match: SpiffWorkflow names task specs by BPMN id, so a stored state is
restored against the target spec when every element the instance has reached exists there. Predicted
(not yet reached) tasks are dropped and re-predicted from the target spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy import select

from bpm import engine
from bpm.adapters.orm import ProcessDefinition, ProcessInstance, Task
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain.errors import PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.services import definitions
from bpm.services.projection import (
    apply_snapshot,
    archived_chunks,
    record,
    resolve_assignment,
)

BPMN_NS = engine.BPMN_NS
TIMER_TAGS = tuple(f"{{{BPMN_NS}}}{tag}" for tag in engine.TIMER_KINDS)
ACTIVE_STATES = ("READY", "WAITING", "STARTED")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


# --- diff ------------------------------------------------------------------------------------------------------


def describe_elements(definition: ProcessDefinition) -> dict[str, dict[str, Any]]:
    """Per element id: type, name, assignment attributes, condition, timer, flow ends, event references."""
    root = etree.fromstring(definition.bpmn_xml.encode(), _PARSER)
    process = root.find(f"{{{BPMN_NS}}}process[@id='{definition.key}']")
    described: dict[str, dict[str, Any]] = {}
    if process is None:
        return described
    user_tasks = definitions.model_of(definition).get("user_tasks", {})
    for element in process.iter():
        if not isinstance(element.tag, str) or element.get("id") is None or element.tag in TIMER_TAGS:
            continue
        kind = etree.QName(element).localname
        if kind.endswith("EventDefinition") or kind in ("incoming", "outgoing", "conditionExpression"):
            continue
        described[element.get("id")] = _describe(element, kind, user_tasks.get(element.get("id"), {}))
    return described


def _describe(element, kind: str, user_task: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"type": kind, "name": element.get("name")}
    for attribute in engine.ASSIGNMENT_ATTRIBUTES:
        if user_task.get(attribute) is not None:
            info[attribute] = user_task[attribute]
    condition = element.find(f"{{{BPMN_NS}}}conditionExpression")
    if condition is not None and condition.text:
        info["condition"] = condition.text.strip()
    if kind == "sequenceFlow":
        info["source"], info["target"] = element.get("sourceRef"), element.get("targetRef")
    for timer in element.iterchildren(f"{{{BPMN_NS}}}timerEventDefinition"):
        for spec in timer:
            if isinstance(spec.tag, str):
                info["timer"] = f"{etree.QName(spec).localname}: {(spec.text or '').strip()}"
    for definition in element:
        if isinstance(definition.tag, str) and etree.QName(definition).localname.endswith("EventDefinition"):
            info.setdefault("event", etree.QName(definition).localname.replace("EventDefinition", ""))
    if element.get("default"):
        info["default"] = element.get("default")
    return info


def diff_versions(uow: UnitOfWork, actor: Actor, key: str, from_version: int, to_version: int) -> dict[str, Any]:
    if not actor.may("read"):
        raise PermissionDenied(f"'{actor.username}' may not read definitions")
    with uow:
        old = describe_elements(definitions.get_definition(uow, key, from_version))
        new = describe_elements(definitions.get_definition(uow, key, to_version))
    added = [{"id": i, **new[i]} for i in new if i not in old]
    removed = [{"id": i, **old[i]} for i in old if i not in new]
    changed = []
    for element_id in (i for i in new if i in old and new[i] != old[i]):
        fields = sorted(set(old[element_id]) | set(new[element_id]))
        changes = {f: {"from": old[element_id].get(f), "to": new[element_id].get(f)} for f in fields
                   if old[element_id].get(f) != new[element_id].get(f)}
        changed.append({"id": element_id, "type": new[element_id]["type"], "changes": changes})
    return {"key": key, "from_version": from_version, "to_version": to_version,
            "added": added, "removed": removed, "changed": changed}


# --- migration ------------------------------------------------------------------------------------------------


@dataclass
class MigrateInstances:
    key: str
    from_version: int
    to_version: int
    actor: Actor
    instance_ids: list[str] | None = None
    dry_run: bool = True


@dataclass
class MigrationOutcome:
    instance_id: str
    can_move: bool
    moved: bool = False
    reasons: list[str] = field(default_factory=list)


def migrate_instances(cmd: MigrateInstances, uow: UnitOfWork) -> list[MigrationOutcome]:
    """Check (dry run) or move every running instance of `from_version` (or the listed ones) in one transaction."""
    if not cmd.actor.may("deploy"):
        raise PermissionDenied(f"'{cmd.actor.username}' may not migrate instances (needs the deploy permission)")
    if cmd.from_version == cmd.to_version:
        raise ValidationFailed("nothing to migrate", {"to_version": ["must differ from from_version"]})
    with uow:
        source = definitions.get_definition(uow, cmd.key, cmd.from_version)
        target = definitions.get_definition(uow, cmd.key, cmd.to_version)
        runtime = definitions.runtime_for(target, _scripts_allowed(uow))
        outcomes = [_migrate_one(uow, instance, source, target, runtime, cmd)
                    for instance in _instances(uow, source, cmd.instance_ids)]
        if not cmd.dry_run:
            uow.commit()
        return outcomes


def _instances(uow: UnitOfWork, source: ProcessDefinition, ids: list[str] | None) -> list[ProcessInstance]:
    query = select(ProcessInstance).where(ProcessInstance.definition_id == source.id)
    if ids:
        query = select(ProcessInstance).where(ProcessInstance.id.in_(ids))
    return list(uow.session.scalars(query.order_by(ProcessInstance.started_at, ProcessInstance.id)))


def _migrate_one(uow, instance, source, target, runtime, cmd: MigrateInstances) -> MigrationOutcome:
    whole = engine.merge_archive(instance.state_json, archived_chunks(uow, instance.id))  # every completed step
    reasons = _blockers(instance, source, runtime, whole)
    outcome = MigrationOutcome(instance.id, can_move=not reasons, reasons=reasons)
    if reasons:
        return outcome
    try:
        with engine.clock_context(uow.clock.now):
            workflow = engine.migrate_state(whole, runtime, whole=True)
            snap = engine.snapshot(workflow)
    except engine.EngineError as error:
        outcome.can_move, outcome.reasons = False, [str(error)]
        return outcome
    if not cmd.dry_run:
        instance.definition_id = target.id
        record(uow, instance.id, "instance.migrated", cmd.actor.username,
               data={"from_version": source.version, "to_version": target.version})
        apply_snapshot(uow, instance, target, snap, cmd.actor.username)
        _reassign_open_tasks(uow, target, snap)
        outcome.moved = True
    return outcome


def _reassign_open_tasks(uow: UnitOfWork, target: ProcessDefinition, snap: engine.Snapshot) -> None:
    """Open tasks keep their ids, due dates and claims; candidates, priority and form follow the new version."""
    declared = definitions.model_of(target).get("user_tasks", {})
    for open_task in snap.open_tasks:
        row = uow.session.get(Task, open_task.id)
        if row is None or row.status != "open":
            continue
        assignment = resolve_assignment(open_task, declared.get(open_task.element_id, {}), uow.clock.now())
        row.candidate_groups, row.candidate_users = assignment["candidate_groups"], assignment["candidate_users"]
        row.priority, row.form_key = assignment["priority"], assignment["form_key"]
        row.assignee = row.assignee or assignment["assignee"]


def _blockers(instance: ProcessInstance, source: ProcessDefinition, runtime, whole_state: str) -> list[str]:
    if instance.definition_id != source.id:
        return [f"the instance runs another definition version (id {instance.definition_id})"]
    if instance.status != "running":
        return [f"the instance is {instance.status}"]
    missing = engine.missing_in_target(whole_state, runtime)
    return [f"{'active' if state in ACTIVE_STATES else 'completed'} element '{element}' ({state}) is missing "
            "in the target version" for element, state in sorted(missing.items())]


def _scripts_allowed(uow: UnitOfWork) -> bool:
    return bool(uow.settings and uow.settings.allow_scripts == "restricted")
