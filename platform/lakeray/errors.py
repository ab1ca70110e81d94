"""The one error hierarchy of lakeray.

Every error carries an ``error_code`` (the strings MLflow and Databricks send) and maps to
exactly one HTTP status through :data:`HTTP_STATUS`. Errors pickle across Ray actors (their
``__init__`` takes only the message) and the HTTP client rebuilds them from the JSON body
``{"error_code": ..., "message": ...}``, so ``except lakeray.NotFound`` works on both paths.
"""

from __future__ import annotations


class LakerayError(Exception):
    """Base class of every error lakeray raises on purpose."""

    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        # Rebuild from the message alone so the error survives pickling through Ray.
        return (type(self), (self.message,))

    def to_json(self) -> dict:
        """The wire body of this error, as MLflow and Databricks send it."""
        return {"error_code": self.error_code, "message": self.message}


class InvalidArgument(LakerayError):
    """The request was malformed or named something in a way that is not allowed."""

    error_code = "INVALID_PARAMETER_VALUE"


class Unauthenticated(LakerayError):
    """No token, or a token that is unknown, expired or revoked."""

    error_code = "UNAUTHENTICATED"


class PermissionDenied(LakerayError):
    """The caller is known but lacks a privilege the operation needs."""

    error_code = "PERMISSION_DENIED"


class NotFound(LakerayError):
    """The named object does not exist (or the caller may not know it exists)."""

    error_code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(LakerayError):
    """An object with that name already exists."""

    error_code = "RESOURCE_ALREADY_EXISTS"


class Conflict(LakerayError):
    """The operation conflicts with the current state (non-empty parent, concurrent change)."""

    error_code = "RESOURCE_CONFLICT"


class PayloadTooLarge(LakerayError):
    """The request body is over the configured cap."""

    error_code = "REQUEST_LIMIT_EXCEEDED"


class ResourceExhausted(LakerayError):
    """A rate limit or quota was hit."""

    error_code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(LakerayError):
    """The operation did not finish within its timeout."""

    error_code = "DEADLINE_EXCEEDED"


class Unavailable(LakerayError):
    """A platform component is not reachable right now; retrying may help."""

    error_code = "TEMPORARILY_UNAVAILABLE"


class ModelError(LakerayError):
    """A served model raised while answering (the body says which error, never the stack)."""

    error_code = "MODEL_ERROR"


#: error class -> HTTP status; the single source of truth for the REST layer.
HTTP_STATUS: dict[type[LakerayError], int] = {
    InvalidArgument: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    AlreadyExists: 409,
    Conflict: 409,
    PayloadTooLarge: 413,
    ResourceExhausted: 429,
    LakerayError: 500,
    ModelError: 500,
    Unavailable: 503,
    DeadlineExceeded: 504,
}

_BY_CODE: dict[str, type[LakerayError]] = {cls.error_code: cls for cls in HTTP_STATUS}
# Codes other servers send for the same meaning.
_BY_CODE.update({"BAD_REQUEST": InvalidArgument, "NOT_FOUND": NotFound, "ALREADY_EXISTS": AlreadyExists})


def http_status(error: LakerayError) -> int:
    """The HTTP status for ``error`` (the nearest class in :data:`HTTP_STATUS`)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def from_wire(error_code: str | None, message: str, status: int) -> LakerayError:
    """Rebuild an error from an HTTP error body, falling back to the status code."""
    cls = _BY_CODE.get(error_code or "")
    if cls is None:
        by_status = {v: k for k, v in reversed(list(HTTP_STATUS.items()))}
        cls = by_status.get(status, LakerayError)
    return cls(message)
