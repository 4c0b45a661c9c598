"""Shared by the authorization table test: principals, placeholder URLs and one request per (route, method)."""

from __future__ import annotations

import re
from datetime import timedelta

from conftest import bpmn_fixture, deploy

from bpm.services import identity

PRINCIPALS = ("admin", "designer", "integrator", "approver", "no_role", "no_token", "narrowed", "expired",
              "revoked")
PLACEHOLDERS = {"key": "expense_approval", "version": "1", "name": "missing", "username": "nobody"}


def principal_headers(context, users) -> dict[str, dict[str, str]]:
    """The standard users plus: a read-only token of the integrator, an expired and a revoked admin token."""
    headers = {"admin": users["admin"], "designer": users["dora"], "integrator": users["ivan"],
               "approver": users["alice"], "no_role": users["nobody"], "no_token": {}}
    _, narrowed = identity.issue_token(identity.IssueToken("ivan", "read only", ["read"]), context.uow())
    expired_at = context.clock.now() - timedelta(days=1)
    _, expired = identity.issue_token(identity.IssueToken("admin", "old", None, expired_at), context.uow())
    row, revoked = identity.issue_token(identity.IssueToken("admin", "gone"), context.uow())
    identity.revoke_token("admin", row.id, context.uow())
    headers.update({"narrowed": _bearer(narrowed), "expired": _bearer(expired), "revoked": _bearer(revoked)})
    return headers


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes(app) -> list[str]:
    """'METHOD /api/v1/...' for every route and method of the API (the OpenAPI document itself excluded)."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add(f"{method} {rule.rule}")
    return sorted(found)


def concrete_path(rule: str) -> str:
    def fill(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "int":
            return PLACEHOLDERS.get(name, "999999") if name == "version" else "999999"
        return PLACEHOLDERS.get(name, "00000000-0000-0000-0000-000000000000")

    return re.sub(r"<(?:(\w+):)?(\w+)>", fill, rule)


def prepare(client, users) -> None:
    assert deploy(client, users["dora"], bpmn_fixture("expense_approval.bpmn")).status_code == 201


# Bodies that pass validation, so that the table shows the authorization decision rather than a 422.
BODIES = {
    "POST /api/v1/users": {"username": "zz-new-user", "display_name": "New", "roles": [], "groups": []},
    "POST /api/v1/groups": {"name": "zz-group", "display_name": "ZZ"},
    "POST /api/v1/messages": {"name": "nobody-waits-for-this"},
    "POST /api/v1/webhooks": {"url": "https://hooks.example.com/x", "events": ["instance.started"]},
    "POST /api/v1/simulations": {"process_key": "expense_approval", "scenario": {}},
    "POST /api/v1/process-definitions/<string:key>/migrations": {"from_version": 1, "to_version": 2},
    "POST /api/v1/process-definitions/<string:key>/scenarios": {"name": "s", "scenario": {}},
    "POST /api/v1/process-definitions/<string:key>/instances": {"variables": {"amount": 1}},
}
QUERIES = {"GET /api/v1/process-definitions/<string:key>/diff": {"from": 1, "to": 1}}
FORMATS = {"date-time": "2026-01-06T09:00:00+00:00", "date": "2026-01-06", "email": "x@example.com",
           "uri": "https://example.com/x", "url": "https://example.com/x"}


def example_bodies(spec: dict) -> dict[str, dict]:
    """A minimal valid-looking JSON body per operation from the OpenAPI document (required fields only)."""
    bodies = {}
    for path, operations in spec.get("paths", {}).items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if content:
                bodies[(method.upper(), rule)] = _example(spec, content.get("schema", {}))
    return bodies


def _example(spec: dict, schema: dict, depth: int = 0):
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(schema, dict) or depth > 4:
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _example(spec, properties.get(name, {}), depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        return [_example(spec, schema.get("items", {}), depth + 1)] if schema.get("minItems") else []
    if kind == "string":
        return FORMATS.get(schema.get("format"), "x" * max(1, schema.get("minLength", 1)))
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    return True if kind == "boolean" else None


def _bare(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule)


def call(client, route: str, headers: dict[str, str], examples: dict) -> int:
    method, rule = route.split(" ", 1)
    kwargs = {"headers": headers, "query_string": QUERIES.get(route, {})}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = BODIES.get(route, examples.get((method, _bare(rule)), {}))
    return client.open(concrete_path(rule), method=method, **kwargs).status_code
