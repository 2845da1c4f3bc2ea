"""Errors that reach the user as a precise HTTP status with a JSON reason."""

from __future__ import annotations


class GatewayError(Exception):
    """An error whose message is safe to show to the caller.

    ``status`` is the HTTP status, ``reason`` a short machine-readable word
    (sent as ``error``), ``message`` the human explanation.
    """

    status = 400
    reason = "bad_request"

    def __init__(self, message: str, *, reason: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if status is not None:
            self.status = status


class BadRequest(GatewayError):
    status = 400
    reason = "bad_request"


class Unauthorized(GatewayError):
    status = 401
    reason = "unauthorized"


class Forbidden(GatewayError):
    status = 403
    reason = "forbidden"


class NotFound(GatewayError):
    status = 404
    reason = "not_found"


class Conflict(GatewayError):
    status = 409
    reason = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    reason = "payload_too_large"


class InvalidOptions(GatewayError):
    """Validation failures of cluster options, scale counts and similar input."""

    status = 422
    reason = "invalid"


class QuotaExceeded(GatewayError):
    status = 403
    reason = "quota_exceeded"


class ServiceUnavailable(GatewayError):
    """A dependency (the hub, the Kubernetes API) is unreachable; retry later."""

    status = 503
    reason = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
