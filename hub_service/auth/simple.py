"""HTTP Basic authentication with an optional shared password (for demos and tests)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING

from traitlets import Unicode

from jhub_gateway.models import User

from ..errors import Unauthorized
from .base import Authenticator

if TYPE_CHECKING:
    from tornado.web import RequestHandler


class SimpleAuthenticator(Authenticator):
    """Trusts the Basic-auth user name; checks the password when one is set.

    Without a password anyone can act as anyone: fine on a laptop, never on a
    shared machine. The service logs a warning at start in that case.
    """

    challenge = 'Basic realm="jhub-gateway"'

    password = Unicode(
        None,
        allow_none=True,
        help="Shared password every user must send. None accepts any password (insecure).",
        config=True,
    )

    async def setup(self) -> None:
        if not self.password:
            self.log.warning("SimpleAuthenticator has no password: any user name is accepted")

    async def authenticate(self, handler: RequestHandler) -> User:
        header = handler.request.headers.get("Authorization")
        if not header:
            raise Unauthorized("authentication required (HTTP Basic)")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise Unauthorized("expected an 'Authorization: Basic <credentials>' header")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise Unauthorized("malformed Basic credentials: expected 'user:password'")
        if self.password and not hmac.compare_digest(password.encode(), self.password.encode()):
            raise Unauthorized("wrong user name or password")
        return User(name=username)
