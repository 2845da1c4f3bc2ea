"""The gateway's own session cookie.

Upstream clients authenticate once (after a 401 challenge) and then rely on a
cookie. The cookie is signed with a secret every replica shares and has a fixed
name, so a session is valid on any replica (upstream's name is random per process).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING

from tornado.web import create_signed_value, decode_signed_value

from jhub_gateway.models import User

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest
    from tornado.web import RequestHandler

COOKIE_NAME = "jhub-gateway-session"
_MAX_VERIFIED = 10_000


def is_https(request: HTTPServerRequest) -> bool:
    """Whether the browser reached us over HTTPS, so cookies we set must be ``Secure``.

    The service speaks plain HTTP behind Traefik, which says how the client came in
    (``X-Forwarded-Proto``; ``X-Scheme`` first, as Tornado's ``xheaders`` read them).
    A client reaching the service directly can only make its own cookie stricter.
    """
    if request.protocol == "https":
        return True
    headers = request.headers
    proto = headers.get("X-Scheme") or headers.get("X-Forwarded-Proto")
    return proto is not None and proto.rsplit(",", 1)[-1].strip() == "https"


def session_cookie(handler: RequestHandler) -> str | None:
    """Our cookie's value from the request, without parsing every cookie it carries.

    Same result as ``handler.get_cookie(COOKIE_NAME)`` (the last one wins; quotes
    removed); a value with escapes, which our signed values never have, is left to
    Tornado's parser.
    """
    header = handler.request.headers.get("Cookie")
    if header is None or COOKIE_NAME not in header:
        return None
    value = None
    for chunk in header.split(";"):
        name, _, raw = chunk.partition("=")
        if name.strip() != COOKIE_NAME:
            continue
        raw = raw.strip()
        if "\\" in raw:
            return handler.get_cookie(COOKIE_NAME)
        value = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    return value


class SessionCookies:
    def __init__(
        self, secret: bytes, max_age: float, path: str = "/", secure: bool = False
    ) -> None:
        self._secret = secret
        self._max_age = max_age
        self._path = path
        self._secure = secure
        # verified cookie value -> (user, expiry): skips HMAC and JSON on every request
        self._verified: dict[str, tuple[User, float]] = {}

    def write(self, handler: RequestHandler, user: User) -> None:
        if self._max_age <= 0:
            return
        payload = json.dumps(
            {
                "n": user.name,
                "a": user.admin,
                "g": sorted(user.groups),
                "e": time.time() + self._max_age,
            }
        )
        value = create_signed_value(self._secret, COOKIE_NAME, payload).decode()
        handler.set_cookie(
            COOKIE_NAME,
            value,
            path=self._path,
            httponly=True,
            samesite="Strict",
            secure=self._secure or is_https(handler.request),
            expires_days=None,
            max_age=int(self._max_age),
        )

    def xsrf_token(self, user: User) -> str:
        """The token a page of ``user`` echoes in ``X-XSRFToken`` (same on every replica)."""
        return hmac.new(self._secret, b"xsrf\0" + user.name.encode(), hashlib.sha256).hexdigest()

    def check_xsrf(self, user: User, presented: str) -> bool:
        return hmac.compare_digest(
            self.xsrf_token(user), presented.encode("ascii", "replace").decode()
        )

    def clear(self, handler: RequestHandler) -> None:
        handler.clear_cookie(COOKIE_NAME, path=self._path)

    def read(self, handler: RequestHandler) -> User | None:
        raw = session_cookie(handler)
        if not raw:
            return None
        now = time.time()
        known = self._verified.get(raw)
        if known is not None:
            if known[1] > now:
                return known[0]
            del self._verified[raw]
            return None
        value = decode_signed_value(self._secret, COOKIE_NAME, raw, max_age_days=1)
        if value is None:
            return None
        try:
            data = json.loads(value)
            if data["e"] < now:
                return None
            user = User(name=data["n"], admin=bool(data["a"]), groups=frozenset(data["g"]))
        except (ValueError, KeyError, TypeError):
            return None
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()  # crude bound; entries are cheap to re-verify
        self._verified[raw] = (user, float(data["e"]))
        return user
