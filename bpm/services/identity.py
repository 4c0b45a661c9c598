"""Users, groups and API tokens. Tokens are stored as SHA-256 hashes and shown only once."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select

from bpm.adapters.orm import ApiToken, Group, User, UserGroup
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.clock import utc
from bpm.domain.errors import InvalidTransition, NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from bpm.domain.model import ROLES, SCOPES, Actor

TOKEN_PREFIX = "bpm_"  # noqa: S105 - a public prefix, not a secret


@dataclass
class CreateUser:
    username: str
    display_name: str = ""
    email: str | None = None
    groups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    supervisor: str | None = None


@dataclass
class IssueToken:
    username: str
    name: str = ""
    scopes: list[str] | None = None
    expires_at: datetime | None = None
    token: str | None = None  # a chosen token (bootstrap, seeding); otherwise a random one


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(cmd: CreateUser, uow: UnitOfWork) -> User:
    _check_roles(cmd.roles)
    with uow:
        if uow.session.scalar(select(User).where(User.username == cmd.username)) is not None:
            raise InvalidTransition(f"user '{cmd.username}' already exists")
        user = User(username=cmd.username, display_name=cmd.display_name or cmd.username, email=cmd.email,
                    roles=sorted(set(cmd.roles)), supervisor=cmd.supervisor, created_at=uow.clock.now())
        user.groups = [_group(uow, name) for name in sorted(set(cmd.groups))]
        uow.session.add(user)
        uow.commit()
        return user


def update_user_groups(username: str, groups: list[str], uow: UnitOfWork) -> User:
    with uow:
        user = get_user(username, uow)
        user.groups = [_group(uow, name) for name in sorted(set(groups))]
        uow.commit()
        _ACTOR_CACHE.clear()
        return user


def _check_roles(roles: list[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValidationFailed("unknown role", {"roles": [f"unknown role(s): {', '.join(unknown)}; "
                                                          f"use {', '.join(ROLES)}"]})


def _group(uow: UnitOfWork, name: str) -> Group:
    group = uow.session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, display_name=name)
        uow.session.add(group)
        uow.session.flush()
    return group


def create_group(name: str, display_name: str, uow: UnitOfWork) -> Group:
    with uow:
        if uow.session.scalar(select(Group).where(Group.name == name)) is not None:
            raise InvalidTransition(f"group '{name}' already exists")
        group = Group(name=name, display_name=display_name or name)
        uow.session.add(group)
        uow.commit()
        return group


def list_users(uow: UnitOfWork) -> list[User]:
    with uow:
        return list(uow.session.scalars(select(User).order_by(User.username)))


def list_groups(uow: UnitOfWork) -> list[tuple[Group, list[str]]]:
    with uow:
        groups = list(uow.session.scalars(select(Group).order_by(Group.name)))
        rows = uow.session.execute(select(UserGroup.group_id, User.username).join(User, User.id == UserGroup.user_id))
        members: dict[int, list[str]] = {}
        for group_id, username in rows:
            members.setdefault(group_id, []).append(username)
        return [(group, sorted(members.get(group.id, []))) for group in groups]


def get_user(username: str, uow: UnitOfWork) -> User:
    user = uow.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user '{username}' not found")
    return user


def issue_token(cmd: IssueToken, uow: UnitOfWork) -> tuple[ApiToken, str]:
    unknown = sorted(set(cmd.scopes or ()) - set(SCOPES))
    if unknown:
        raise ValidationFailed("unknown scope", {"scopes": [f"unknown scope(s): {', '.join(unknown)}"]})
    token = cmd.token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    with uow:
        user = get_user(cmd.username, uow)
        row = ApiToken(user_id=user.id, token_hash=hash_token(token), prefix=token[:10], name=cmd.name,
                       scopes=sorted(set(cmd.scopes)) if cmd.scopes is not None else None,
                       expires_at=cmd.expires_at, created_at=uow.clock.now())
        uow.session.add(row)
        uow.commit()
        return row, token


def list_tokens(username: str, uow: UnitOfWork) -> list[ApiToken]:
    with uow:
        user = get_user(username, uow)
        return list(uow.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_token(username: str, token_id: int, uow: UnitOfWork) -> None:
    with uow:
        user = get_user(username, uow)
        row = uow.session.get(ApiToken, token_id)
        if row is None or row.user_id != user.id:
            raise NotFound(f"token {token_id} of user '{username}' not found")
        row.revoked_at = uow.clock.now()
        uow.commit()
    _ACTOR_CACHE.clear()


def issue_own_token(actor: Actor, cmd: IssueToken, uow: UnitOfWork) -> tuple[ApiToken, str]:
    """A user issues a token for themselves: never wider than the token that asks for it."""
    _check_within_caller_scopes(actor, cmd.scopes, "issue")
    return issue_token(IssueToken(actor.username, cmd.name, cmd.scopes, cmd.expires_at), uow)


def revoke_own_token(actor: Actor, token_id: int, uow: UnitOfWork) -> None:
    """A user revokes one of their tokens; a scoped token may revoke only tokens within its own scopes."""
    with uow:
        row = uow.session.get(ApiToken, token_id)
        owner = get_user(actor.username, uow)
        if row is None or row.user_id != owner.id:
            raise NotFound(f"token {token_id} of user '{actor.username}' not found")
        _check_within_caller_scopes(actor, row.scopes, "revoke")
    revoke_token(actor.username, token_id, uow)


def _check_within_caller_scopes(actor: Actor, scopes: list[str] | None, verb: str) -> None:
    if actor.scopes is None:
        return
    held = ", ".join(sorted(actor.scopes))
    if scopes is None:
        raise PermissionDenied(f"a token limited to scopes [{held}] cannot {verb} an unrestricted token: "
                               f"name scopes within [{held}]")
    wider = sorted(set(scopes) - actor.scopes)
    if wider:
        raise PermissionDenied(f"a token limited to scopes [{held}] cannot {verb} a token with scopes "
                               f"[{', '.join(wider)}]")


# Token lookups happen on every request: cache resolved actors briefly (revocation clears the cache in this
# process; other processes see a revocation within ACTOR_CACHE_SECONDS).
ACTOR_CACHE_SECONDS = 5.0
_ACTOR_CACHE: dict[str, tuple[float, Actor, datetime | None]] = {}
_CACHE_LOCK = threading.Lock()


def authenticate(token: str, uow: UnitOfWork) -> Actor:
    digest = hash_token(token)
    cached = _ACTOR_CACHE.get(digest)
    if cached and cached[0] > time.monotonic():
        _check_expiry(cached[2], uow)
        return cached[1]
    actor, expires_at = _load_actor(digest, uow)
    with _CACHE_LOCK:
        _ACTOR_CACHE[digest] = (time.monotonic() + ACTOR_CACHE_SECONDS, actor, expires_at)
    return actor


def _load_actor(digest: str, uow: UnitOfWork) -> tuple[Actor, datetime | None]:
    with uow:
        row = uow.session.execute(
            select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == digest)
        ).first()
        if row is None or row.ApiToken.revoked_at is not None or not row.User.active:
            raise Unauthenticated("the token is unknown or revoked")
        token, user = row.ApiToken, row.User
        _check_expiry(utc(token.expires_at), uow)
        scopes = frozenset(token.scopes) if token.scopes is not None else None
        actor = Actor(user.username, frozenset(user.roles or ()), frozenset(g.name for g in user.groups), scopes)
        return actor, utc(token.expires_at)


def _check_expiry(expires_at: datetime | None, uow: UnitOfWork) -> None:
    if expires_at is not None and expires_at <= uow.clock.now():
        raise Unauthenticated("the token has expired")


def bootstrap_admin(token: str, uow: UnitOfWork) -> bool:
    """Create user `admin` with this token when no admin exists yet (first start of a deployment)."""
    with uow:
        admins = [u for u in uow.session.scalars(select(User)) if "admin" in (u.roles or [])]
        if admins:
            return False
    if not _exists("admin", uow):
        create_user(CreateUser("admin", "Administrator", roles=["admin"]), uow)
    with uow:
        user = get_user("admin", uow)
        if "admin" not in user.roles:
            user.roles = sorted({*user.roles, "admin"})
        uow.session.execute(delete(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        uow.commit()
    issue_token(IssueToken("admin", name="bootstrap", token=token), uow)
    return True


def _exists(username: str, uow: UnitOfWork) -> bool:
    with uow:
        return uow.session.scalar(select(User.id).where(User.username == username)) is not None


def clear_actor_cache() -> None:
    with _CACHE_LOCK:
        _ACTOR_CACHE.clear()
