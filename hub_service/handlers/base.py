"""Shared request handling: authentication, JSON bodies, JSON errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import web

from jhub_gateway.models import User

from ..clusters import ClusterService
from ..errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from ..session import SessionCookies

log = logging.getLogger("jhub_gateway.hub_service")


class BaseHandler(web.RequestHandler):
    """Every API handler: errors are JSON ``{"error", "message"}``, never a traceback."""

    user: User | None = None

    @property
    def clusters(self) -> ClusterService:
        """The service layer: the only way from a handler to clusters."""
        return self.settings["clusters"]

    @property
    def health_checks(self) -> Callable[[], Awaitable[dict[str, dict]]]:
        return self.settings["health_checks"]

    @property
    def sessions(self) -> SessionCookies:
        return self.settings["sessions"]

    def compute_etag(self) -> None:
        # API answers are not cached by clients; hashing every body is wasted work
        return None

    def check_xsrf_cookie(self) -> None:
        # API calls authenticate with headers or our SameSite=Strict cookie, not forms.
        return

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        limit = self.settings["max_body_bytes"]
        declared = self.request.headers.get("Content-Length")
        if (declared and declared.isdigit() and int(declared) > limit) or len(
            self.request.body or b""
        ) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")

    async def authenticate(self) -> User:
        """Identify the caller: Authorization header first, then our session cookie."""
        session = self.sessions.read(self)
        if session is not None and self.request.headers.get("Authorization") is None:
            self._refuse_cross_site()
            self._check_xsrf(session)
            self.user = session
            return session
        user = await self.settings["authenticator"].authenticate(self)
        if self.request.headers.get("Authorization") is None:  # the hub login cookie
            self._check_xsrf(user)
        if session != user:  # refresh the cookie only when it is missing or for someone else
            self.sessions.write(self, user)
        self.user = user
        return user

    @property
    def extended(self) -> bool:
        """Whether the client understands our additions to upstream's responses."""
        return self.request.headers.get("X-Gateway-Extensions") == "1"

    def _refuse_cross_site(self) -> None:
        """A cookie alone must not let another site's page change anything.

        Browsers say where a request comes from (Sec-Fetch-Site); and a JSON body
        cannot be sent cross-origin without a CORS preflight, which we never grant.
        """
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return
        site = self.request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise Forbidden(
                "cross-site requests may not use the session cookie", reason="cross_site"
            )
        content_type = self.request.headers.get("Content-Type", "")
        if self.request.body and not content_type.startswith("application/json"):
            raise Forbidden(
                "requests authenticated by cookie must send application/json", reason="cross_site"
            )

    def _check_xsrf(self, user: User) -> None:
        """A browser changing something with a cookie must echo its page's XSRF token."""
        headers = self.request.headers
        if self.request.method in ("GET", "HEAD", "OPTIONS") or not (
            "Sec-Fetch-Site" in headers or "Origin" in headers
        ):
            return  # reads, and non-browser clients (which no other site can drive)
        if not self.sessions.check_xsrf(user, headers.get("X-XSRFToken", "")):
            raise Forbidden("missing or wrong XSRF token; reload the page", reason="xsrf")

    def json_body(self) -> dict[str, Any]:
        body = self.request.body or b""
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(
                f"request body is not valid JSON: {exc}", reason="malformed_json"
            ) from None
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object", reason="malformed_json")
        return data

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, GatewayError):
            log.info(
                "request refused: %s %s -> %d %s",
                self.request.method,
                self.request.path,
                value.status,
                value.reason,
            )
        elif isinstance(value, web.HTTPError):
            log.info(
                "request refused: %s %s -> %d",
                self.request.method,
                self.request.path,
                value.status_code,
            )
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, GatewayError):
            self.set_status(exc.status)
            if isinstance(exc, Unauthorized):
                challenge = getattr(self.settings["authenticator"], "challenge", None)
                if challenge:
                    self.set_header("WWW-Authenticate", challenge)
            if isinstance(exc, ServiceUnavailable):
                self.set_header("Retry-After", str(exc.retry_after))
            body = {"error": exc.reason, "message": exc.message}
        elif isinstance(exc, web.HTTPError):
            body = {
                "error": (exc.reason or self._reason).lower().replace(" ", "_"),
                "message": exc.log_message or self._reason,
            }
        else:
            self.set_status(500)
            body = {
                "error": "internal_error",
                "message": "the gateway hit an unexpected error; see its log",
            }
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))


class NotFoundHandler(BaseHandler):
    async def prepare(self) -> None:
        raise web.HTTPError(404, f"no such route: {self.request.path}")
