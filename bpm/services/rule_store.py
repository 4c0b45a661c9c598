"""Stored business rules: read, save a new version (admin), evaluate by name, and serve BPMN rule tasks.

The engine evaluates a serviceTask with `bpm.rule` through the evaluator installed here, reading the rule in
the running command's own transaction, so a routing decision and the rule version it used commit together
(the version is named in the instance's decision trace).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bpm import engine, rules
from bpm.adapters import unit_of_work
from bpm.adapters.orm_records import Rule, RuleVersion
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from bpm.domain.model import Actor
from bpm.rule_defaults import DEFAULTS

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


@dataclass
class RuleView:
    name: str
    version: int
    description: str
    document: Any
    updated_by: str | None
    updated_at: Any
    source: str  # "stored" | "shipped"


def get_rule(uow: UnitOfWork, name: str) -> RuleView:
    with uow:
        row = uow.session.get(Rule, name)
        if row is not None:
            return _view(row)
        if name in DEFAULTS:
            description, document = DEFAULTS[name]
            return RuleView(name, 0, description, document, None, None, "shipped")
        raise NotFound(f"rule '{name}' not found")


def list_rules(uow: UnitOfWork) -> list[RuleView]:
    with uow:
        stored = {row.name: _view(row) for row in uow.session.scalars(select(Rule))}
    shipped = [get_rule(uow, name) for name in DEFAULTS if name not in stored]
    return sorted([*stored.values(), *shipped], key=lambda view: view.name)


def rule_versions(uow: UnitOfWork, name: str) -> list[RuleVersion]:
    with uow:
        rows = list(uow.session.scalars(select(RuleVersion).where(RuleVersion.name == name)
                                        .order_by(RuleVersion.version)))
        if not rows and name not in DEFAULTS:
            raise NotFound(f"rule '{name}' not found")
        return rows


def _view(row: Rule) -> RuleView:
    return RuleView(row.name, row.version, row.description, row.document, row.updated_by, row.updated_at, "stored")


@dataclass
class SaveRule:
    name: str
    document: Any
    actor: Actor
    description: str | None = None
    expected_version: int | None = None


def save_rule(cmd: SaveRule, uow: UnitOfWork) -> RuleView:
    """Validate and store a new version; `expected_version` guards against overwriting someone's edit (409)."""
    if not cmd.actor.is_admin:
        raise PermissionDenied("only an admin may change business rules")
    _validate(cmd)
    with uow:
        row = uow.session.get(Rule, cmd.name)
        current = row.version if row is not None else _last_version(uow, cmd.name)
        if cmd.expected_version is not None and cmd.expected_version != current:
            raise InvalidTransition(f"rule '{cmd.name}' is at version {current}, not {cmd.expected_version}",
                                    current_version=current)
        description = cmd.description if cmd.description is not None else _description(row, cmd.name)
        now = uow.clock.now()
        if row is None:
            row = Rule(name=cmd.name)
            uow.session.add(row)
        row.version, row.description, row.document = current + 1, description, cmd.document
        row.updated_by, row.updated_at = cmd.actor.username, now
        uow.session.add(RuleVersion(name=cmd.name, version=row.version, description=description,
                                    document=cmd.document, updated_by=cmd.actor.username, updated_at=now))
        uow.commit()
        return _view(row)


def _validate(cmd: SaveRule) -> None:
    if not NAME_PATTERN.match(cmd.name):
        raise ValidationFailed("invalid rule name", {"name": ["lower-case letters, digits and '_', "
                                                              "starting with a letter"]})
    problems = rules.validate(cmd.document)
    if problems:
        raise ValidationFailed("the rule document is not valid json-logic", {"document": problems})


def _last_version(uow: UnitOfWork, name: str) -> int:
    return uow.session.scalar(select(func.coalesce(func.max(RuleVersion.version), 0))
                              .where(RuleVersion.name == name))


def _description(row: Rule | None, name: str) -> str:
    if row is not None:
        return row.description
    return DEFAULTS.get(name, ("", None))[0]


# --- evaluation ------------------------------------------------------------------------------------------------


def evaluate_rule(uow: UnitOfWork | None, name: str, data: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """(result, "name vN", the variables read). Without a unit of work only the shipped rules are known."""
    view = get_rule(uow, name) if uow is not None else _shipped(name)
    try:
        result = rules.evaluate(view.document, data)
    except rules.RuleError as error:
        raise ValidationFailed(f"rule '{name}' failed: {error}", {"data": [str(error)]}) from error
    values = {key: data[key] for key in sorted(rules.variables_read(view.document)) if key in data}
    return result, f"{name} v{view.version}", values


def _shipped(name: str) -> RuleView:
    if name not in DEFAULTS:
        raise NotFound(f"rule '{name}' not found")
    description, document = DEFAULTS[name]
    return RuleView(name, 0, description, document, None, None, "shipped")


def _evaluate_for_engine(name: str, data: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    return evaluate_rule(unit_of_work.current(), name, data)


engine.set_rule_evaluator(_evaluate_for_engine)
