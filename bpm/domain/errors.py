"""Domain errors. The API maps each class to one HTTP status in a single place (api/errors.py)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: `code` is a stable machine-readable name, `detail` a sentence for people."""

    code = "error"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    code = "not-found"


class InvalidTransition(DomainError):
    """The object's state does not allow the operation (completing a completed task, ...)."""

    code = "invalid-state"


class ConcurrencyConflict(DomainError):
    """Another writer changed the same instance first; the caller may reload and retry."""

    code = "concurrency-conflict"


class IdempotencyConflict(DomainError):
    code = "idempotency-conflict"


class ValidationFailed(DomainError):
    """Input is well-formed but violates a rule; `errors` maps field -> messages."""

    code = "validation-failed"

    def __init__(self, detail: str, errors: dict | None = None, **extra):
        super().__init__(detail, **extra)
        self.errors = errors or {}


class DeploymentRejected(DomainError):
    """Uploaded BPMN failed validation; `problems` name the element, its type and line."""

    code = "deployment-rejected"

    def __init__(self, detail: str, problems: list[dict]):
        super().__init__(detail)
        self.problems = problems


class PayloadTooLarge(DeploymentRejected):
    code = "payload-too-large"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class PermissionDenied(DomainError):
    code = "permission-denied"


class RateLimited(DomainError):
    """The same operation was repeated too soon (e.g. urging a task); `retry_after` is in seconds."""

    code = "rate-limited"
