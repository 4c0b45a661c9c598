"""Demo data for the embedded run command: shipped processes, users in the right groups, known tokens.

Demo tokens are fixed strings so the README's curl walkthrough works as written; they are created only by
`bpm serve --seed-demo` / `bpm seed-demo`, never in production start-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bpm.adapters.orm import ProcessDefinition, User
from bpm.domain.errors import DeploymentRejected
from bpm.services import definitions, identity

# username, display name, roles, groups, supervisor
DEMO_USERS = [
    ("admin", "Administrator", ["admin"], [], None),
    ("dora", "Dora Designer", ["designer"], [], None),
    ("ivan", "Ivan Integrator", ["integrator"], [], None),
    ("alice", "Alice Li 李爱丽", ["approver"], ["team-leads", "sales-managers", "account-managers"], "sam"),
    ("bob", "Bob Wang 王博", ["approver"], ["finance", "technical-directors"], "sam"),
    ("carol", "Carol Zhang 张卡罗", ["approver"], ["directors", "sales-directors", "general-managers"], None),
    ("sam", "Sam Chen 陈山姆", ["approver"], ["service-supervisors", "front-line-service"], "carol"),
]


def demo_token(username: str) -> str:
    return f"demo-{username}"


def seed(context, processes_dir: Path, announce: Callable[[str], None] = print) -> None:
    for username, display_name, roles, groups, supervisor in DEMO_USERS:
        _ensure_user(context, username, display_name, roles, groups, supervisor)
    for extra in _extra_seeders():
        extra(context, announce)
    announce("demo users and their API tokens (Authorization: Bearer <token>):")
    for username, _, roles, groups, _ in DEMO_USERS:
        announce(f"  {username:<6} {demo_token(username):<12} roles={','.join(roles)} groups={','.join(groups)}")


def _ensure_user(context, username, display_name, roles, groups, supervisor) -> None:
    uow = context.uow()
    with uow:
        exists = uow.session.scalar(select(User.id).where(User.username == username)) is not None
    if not exists:
        identity.create_user(identity.CreateUser(username, display_name, f"{username}@example.com", groups, roles,
                                                 supervisor), uow)
        identity.issue_token(identity.IssueToken(username, "demo", token=demo_token(username)), uow)


def _extra_seeders():
    """Feature modules add demo data by exposing `seed_demo(context, announce)` in api.demo_data."""
    try:
        from api import demo_data
    except ImportError:
        return []
    return list(getattr(demo_data, "SEEDERS", []))


def deploy_shipped_processes(context, processes_dir: Path, announce: Callable[[str], None] = print) -> None:
    """Deploy each shipped BPMN file whose content differs from the newest deployed version of its process."""
    for path in sorted(processes_dir.glob("*.bpmn")):
        data = path.read_bytes()
        if _already_deployed(context, hashlib.sha256(data).hexdigest()):
            continue
        try:
            rows = definitions.deploy(definitions.DeployBpmn(data, path.name, "system"), context.uow())
            announce(", ".join(f"deployed {row.key} v{row.version} from {path.name}" for row in rows))
        except DeploymentRejected as error:
            announce(f"could not deploy {path.name}: {error.detail}")


def _already_deployed(context, checksum: str) -> bool:
    uow = context.uow()
    with uow:
        return uow.session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.checksum == checksum)
                                  .limit(1)) is not None
