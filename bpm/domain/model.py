"""Who may do what: the actor behind a request and the rules that decide what it may touch."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("admin", "designer", "approver", "integrator")
SCOPES = ("deploy", "start", "messages", "tasks", "read", "admin")

# What each role allows. Admins may do everything.
ROLE_PERMISSIONS = {
    "designer": {"deploy", "read", "start", "cancel"},
    "integrator": {"start", "read", "cancel", "messages"},
    "approver": {"tasks", "read", "start"},
}
# A token's scopes narrow what its user may do; the permission each scope unlocks.
SCOPE_PERMISSIONS = {
    "deploy": {"deploy"},
    "start": {"start", "cancel"},
    "messages": {"messages"},
    "tasks": {"tasks"},
    "read": {"read"},
    "admin": {"admin", "deploy", "start", "cancel", "messages", "tasks", "read"},
}


@dataclass(frozen=True)
class Actor:
    username: str
    roles: frozenset[str]
    groups: frozenset[str]
    scopes: frozenset[str] | None = None  # None: the token is not narrowed

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles and self._scope_allows("admin")

    def may(self, permission: str) -> bool:
        if not self._scope_allows(permission):
            return False
        if "admin" in self.roles:
            return True
        return any(permission in ROLE_PERMISSIONS.get(role, ()) for role in self.roles)

    def _scope_allows(self, permission: str) -> bool:
        if self.scopes is None:
            return True
        return any(permission in SCOPE_PERMISSIONS.get(scope, ()) for scope in self.scopes)


def is_candidate(actor: Actor, candidate_users, candidate_groups) -> bool:
    return actor.username in (candidate_users or ()) or bool(actor.groups.intersection(candidate_groups or ()))


def may_work_task(actor: Actor, assignee: str | None, candidate_users, candidate_groups) -> bool:
    """The assignee, a candidate of an unclaimed task, or an admin may act on a task."""
    if actor.is_admin:
        return True
    if not actor.may("tasks"):
        return False
    if assignee is not None:
        return assignee == actor.username
    return is_candidate(actor, candidate_users, candidate_groups)
