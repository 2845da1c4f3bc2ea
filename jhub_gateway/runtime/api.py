"""The scheduler-side HTTP API the gateway calls: ``/api/health`` and ``/api/comm``."""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from tornado import web

if TYPE_CHECKING:
    from .service import GatewaySchedulerService


class RequestError(ValueError):
    """A /api/comm message with a bad op or bad values (reported as 422)."""


_MISSING: Any = object()


def _count(msg: dict[str, Any], key: str, default: Any = _MISSING, nullable: bool = False) -> Any:
    if key not in msg:
        if default is _MISSING:
            raise RequestError(f"{key!r} is required")
        return default
    value = msg[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError(f"{key!r} must be a non-negative integer, got {value!r}")
    return value


def parse_comm_message(msg: Any) -> tuple[str, dict[str, Any]]:
    """Validate a /api/comm body; returns (op, arguments) or raises RequestError."""
    if not isinstance(msg, dict):
        raise RequestError("request body must be a JSON object")
    op = msg.get("op")
    if op == "scale":
        return op, {"count": _count(msg, "count")}
    if op == "adapt":
        minimum = _count(msg, "minimum", default=0, nullable=True) or 0
        # A missing or null maximum means "no upper bound", as the upstream client sends.
        maximum = _count(msg, "maximum", default=None, nullable=True)
        if maximum is not None and maximum < minimum:
            raise RequestError(f"'maximum' ({maximum}) is less than 'minimum' ({minimum})")
        active = msg.get("active", True)
        if not isinstance(active, bool):
            raise RequestError(f"'active' must be a boolean, got {active!r}")
        return op, {"minimum": minimum, "maximum": maximum, "active": active}
    raise RequestError(f"unknown op {op!r}; expected 'scale' or 'adapt'")


class _JSONHandler(web.RequestHandler):
    def write_json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.write_json(status_code, {"error": self._reason, "message": self._reason})


class HealthHandler(_JSONHandler):
    def get(self) -> None:
        self.write_json(200, {"status": "ok"})


class CommHandler(_JSONHandler):
    def initialize(self, service: GatewaySchedulerService, token: str) -> None:
        self.service = service
        self.expected = f"token {token}".encode()

    def _authorized(self) -> bool:
        header = self.request.headers.get("Authorization", "")
        return hmac.compare_digest(header.encode("utf-8", "surrogateescape"), self.expected)

    def post(self) -> None:
        if not self._authorized():
            self.set_header("WWW-Authenticate", "token")
            self.write_json(
                401, {"error": "unauthorized", "message": "a valid cluster token is required"}
            )
            return
        try:
            msg = json.loads(self.request.body or b"null")
        except ValueError:
            self.write_json(400, {"error": "bad_request", "message": "request body is not JSON"})
            return
        try:
            op, args = parse_comm_message(msg)
        except RequestError as exc:
            self.write_json(422, {"error": "invalid_request", "message": str(exc)})
            return
        if op == "scale":
            self.service.scale(args["count"])
        else:
            self.service.adapt(**args)
        self.write_json(200, self.service.status())


def make_app(service: GatewaySchedulerService, token: str) -> web.Application:
    return web.Application(
        [
            (r"/api/health", HealthHandler),
            (r"/api/comm", CommHandler, {"service": service, "token": token}),
        ],
        # Tornado's per-request access log would flood the scheduler log at every scale call.
        log_function=lambda handler: None,
    )
