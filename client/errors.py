"""Exceptions raised by the client, and the HTTP status -> exception mapping.

The classes keep upstream's names and bases (``ValueError`` for 404/422, etc.)
so ``except ValueError`` in existing notebooks keeps working, while carrying
the server's ``status``/``reason``/``message`` for callers that want detail.
"""

from __future__ import annotations

import json
from typing import Any


class _ServerMessage:
    """Mixin: the HTTP status and the server's error reason and message."""

    status: int | None = None
    reason: str | None = None
    message: str = ""

    def _set_details(self, message: str, status: int | None, reason: str | None) -> None:
        self.message = message
        self.status = status
        self.reason = reason


class GatewayClusterError(_ServerMessage, Exception):
    """A cluster could not be started, stopped or scaled (HTTP 409, failed start)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self._set_details(message, status, reason)


class GatewayServerError(_ServerMessage, Exception):
    """The gateway server failed internally (HTTP 5xx)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self._set_details(message, status, reason)


class GatewayValueError(_ServerMessage, ValueError):
    """The request named something unknown or invalid (HTTP 400, 404, 413, 422)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self._set_details(message, status, reason)


class GatewayAuthError(_ServerMessage, PermissionError):
    """Authentication failed or the caller is not allowed (HTTP 401, 403)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self._set_details(message, status, reason)


class GatewayWarning(UserWarning):
    """Something worked, but not entirely as asked (e.g. a clamped scale request)."""


def parse_error_body(text: str) -> tuple[str | None, str]:
    """Return ``(reason, message)`` from an error body.

    Our server sends ``{"error": reason, "message": text}``; upstream sends only
    ``{"error": text}``; proxies may send HTML or plain text.
    """
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None, text.strip()
    if not isinstance(data, dict):
        return None, text.strip()
    error = data.get("error")
    message = data.get("message")
    if message:
        return (str(error) if error else None), str(message)
    if error:
        return None, str(error)
    return None, text.strip()


def error_for_status(status: int, text: str, url: str = "") -> Exception | None:
    """The exception for an HTTP error response, or None for other statuses."""
    reason, message = parse_error_body(text)
    if not message:
        message = f"HTTP {status} from {url}" if url else f"HTTP {status}"
    if status in (400, 404, 413, 422):
        return GatewayValueError(message, status, reason)
    if status == 409:
        return GatewayClusterError(message, status, reason)
    if status in (401, 403):
        return GatewayAuthError(message, status, reason)
    if status >= 500:
        return GatewayServerError(message, status, reason)
    return None
