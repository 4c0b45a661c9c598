"""One place maps domain errors and HTTP errors to RFC 7807 problem+json responses."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from bpm.domain import errors

log = logging.getLogger(__name__)
# Raised by the database driver on input no validator caught (integers beyond 64 bits, lone surrogates).
OUT_OF_RANGE = (OverflowError, UnicodeEncodeError, DataError)
PROBLEM = "application/problem+json"

STATUS = {
    errors.NotFound: 404,
    errors.InvalidTransition: 409,
    errors.ConcurrencyConflict: 409,
    errors.IdempotencyConflict: 409,
    errors.ValidationFailed: 422,
    errors.PayloadTooLarge: 413,
    errors.DeploymentRejected: 422,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.RateLimited: 429,
}
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 413: "Payload too large", 415: "Unsupported media type", 422: "Unprocessable entity",
          429: "Too many requests", 500: "Internal server error", 503: "Service unavailable"}


def problem(status: int, detail: str, type_: str = "about:blank", **extra):
    body = {"type": type_, "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status
    response.content_type = PROBLEM
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="bpm"'
    return response


RESERVED = frozenset({"type", "title", "status", "detail", "instance"})


def init_app(app: Flask) -> None:
    app.register_error_handler(errors.DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    for error_type in OUT_OF_RANGE:
        app.register_error_handler(error_type, _out_of_range)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)


def _domain_error(error: errors.DomainError):
    status = _status_of(error)
    extra = {k: v for k, v in error.extra.items() if v is not None and k not in RESERVED}
    if isinstance(error, errors.ValidationFailed) and error.errors:
        extra["errors"] = error.errors
    if isinstance(error, errors.DeploymentRejected):
        extra["problems"] = error.problems
    response = problem(status, error.detail, f"urn:bpm:problem:{error.code}", **extra)
    if isinstance(error, errors.RateLimited) and extra.get("retry_after"):
        response.headers["Retry-After"] = str(extra["retry_after"])
    return response


def _status_of(error: errors.DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _http_error(error: HTTPException):
    status = error.code or 500
    extra = {}
    data = getattr(error, "data", None) or {}
    if data.get("messages"):  # webargs/marshmallow validation: field -> messages, per location
        extra["errors"] = _flatten_locations(data["messages"])
        detail = "the request is invalid: " + ", ".join(sorted(extra["errors"]))
    else:
        detail = error.description or TITLES.get(status, "")
    return problem(status, detail, **extra)


def _flatten_locations(messages: dict) -> dict:
    flat = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def _out_of_range(error: Exception):
    """A number too large for the database's integer columns or text it cannot store: the client's input."""
    log.info("input out of range: %s", str(error).split("\n")[0])
    return problem(422, "a value in the request is out of range for this server (a number too large, or "
                        "text with unpaired surrogate characters)", "urn:bpm:problem:validation-failed")


def _database_error(error: DBAPIError):
    """A database failure the client can retry: the database is down or dropped the connection (503, the pool has
    replaced its connections by then), a statement or a lock wait outlasted its timeout (503), or it aborted the
    transaction for a concurrent one (409, deadlock or serialization failure: nothing was applied). Any other
    database error is unexpected."""
    state = getattr(error.orig, "sqlstate", None) or ""
    if state in RETRY_CONFLICT_STATES:
        log.info("transaction aborted by the database (%s): %s", state, str(error.orig).split("\n")[0])
        return problem(409, "a concurrent request changed the same data and the database aborted this one; nothing "
                            "was applied, retry it", f"urn:bpm:problem:{errors.ConcurrencyConflict.code}")
    if state in TIMED_OUT:
        return _timed_out(error, state)
    if not (error.connection_invalidated or _connection_failure(error, state)):
        return _unexpected(error)
    log.warning("database unavailable: %s", str(error.orig or error).split("\n")[0])
    return _retry_later("the database is unavailable or the connection to it was lost; the request may not have "
                        "been applied, retry it", "urn:bpm:problem:database-unavailable")


RETRY_CONFLICT_STATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
# Waits that the session's timeouts ended (BPM_DB_STATEMENT_TIMEOUT, BPM_DB_LOCK_TIMEOUT): SQLSTATE -> detail, type.
TIMED_OUT = {
    "57014": ("the database did not answer in time; retry the request",
              "urn:bpm:problem:database-timeout"),  # query_canceled: statement_timeout (or an administrator)
    "55P03": ("the row is locked by another operation; retry the request in a moment",
              "urn:bpm:problem:row-locked"),  # lock_not_available: lock_timeout (or NOWAIT)
}


def _timed_out(error: DBAPIError, state: str):
    """The statement or its wait for a lock outlasted its timeout: the database rolled the transaction back, and
    the client may retry once the other operation is done rather than hold a server thread waiting for it."""
    log.warning("database wait timed out (%s): %s", state, str(error.orig).split("\n")[0])
    return _retry_later(*TIMED_OUT[state])


def _retry_later(detail: str, type_: str):
    response = problem(503, detail, type_)
    response.headers["Retry-After"] = "1"
    return response


def _connection_failure(error: DBAPIError, state: str) -> bool:
    """No connection (class 08, or no SQLSTATE: the driver could not reach the server) or the server is shutting
    down or starting (57P01-57P03)."""
    return isinstance(error, OperationalError) and (not state or state.startswith("08") or state in
                                                    {"57P01", "57P02", "57P03"})


def _unexpected(error: Exception):
    log.exception("unhandled error", exc_info=error)
    return problem(500, "an unexpected error occurred; it has been logged")
