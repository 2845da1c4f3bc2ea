"""The gateway's own session cookie.

Upstream clients authenticate once (after a 401 challenge) and then rely on a
cookie. The cookie is signed with a secret every replica shares and has a fixed
name, so a session is valid on any replica (upstream's name is random per process).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from tornado.web import create_signed_value, decode_signed_value

from jhub_gateway.models import User

if TYPE_CHECKING:
    from tornado.web import RequestHandler

COOKIE_NAME = "jhub-gateway-session"


class SessionCookies:
    def __init__(
        self, secret: bytes, max_age: float, path: str = "/", secure: bool = False
    ) -> None:
        self._secret = secret
        self._max_age = max_age
        self._path = path
        self._secure = secure

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
            secure=self._secure,
            expires_days=None,
            max_age=int(self._max_age),
        )

    def read(self, handler: RequestHandler) -> User | None:
        raw = handler.get_cookie(COOKIE_NAME)
        if not raw:
            return None
        value = decode_signed_value(self._secret, COOKIE_NAME, raw, max_age_days=1)
        if value is None:
            return None
        try:
            data = json.loads(value)
            if data["e"] < time.time():
                return None
            return User(name=data["n"], admin=bool(data["a"]), groups=frozenset(data["g"]))
        except (ValueError, KeyError, TypeError):
            return None
