"""Bearer-token authentication: resolve the token once per request into an Actor."""

from __future__ import annotations

from flask import Flask, current_app, g, request

from bpm.domain.errors import PermissionDenied, Unauthenticated
from bpm.domain.model import Actor
from bpm.services import identity


def init_app(app: Flask) -> None:
    app.before_request(_load_actor)
    app.before_request(_require_token_for_api)


PUBLIC_API_PATHS = frozenset({"/api/v1/openapi.json"})


def _require_token_for_api() -> None:
    """Every /api/v1 call needs a valid token: answer 401 before any body validation (never 422 first)."""
    if request.path.startswith("/api/v1/") and request.path not in PUBLIC_API_PATHS and request.method != "OPTIONS":
        current_actor()


def _load_actor() -> None:
    g.actor = None
    g.auth_error = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        try:
            g.actor = identity.authenticate(header[7:].strip(), server().uow())
        except Unauthenticated as error:
            g.auth_error = error


def server():
    return current_app.extensions["bpm"]


def uow():
    """The request's unit of work: read-only for GET and HEAD (they never write; see ServerContext.uow)."""
    return server().uow(read_only=request.method in READ_METHODS)


READ_METHODS = frozenset({"GET", "HEAD"})


def current_actor() -> Actor:
    actor = getattr(g, "actor", None)
    if actor is None:
        raise getattr(g, "auth_error", None) or Unauthenticated("send an API token as 'Authorization: Bearer <token>'")
    return actor


def require(permission: str) -> Actor:
    actor = current_actor()
    if not actor.may(permission):
        raise PermissionDenied(f"'{actor.username}' may not {permission}: missing role or token scope")
    return actor


def require_admin() -> Actor:
    actor = current_actor()
    if not actor.is_admin:
        raise PermissionDenied("only an admin may do this")
    return actor
