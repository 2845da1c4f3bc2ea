"""Browser login through the hub's OAuth provider (authorization code + PKCE).

Unlike JupyterHub's ``HubOAuth``, the login state lives in a sealed cookie, not
in process memory, so the callback may land on any replica; cookie names are
fixed and the sealing key is shared (see ``JupyterHubAuthenticator.setup``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from cryptography.fernet import Fernet, InvalidToken
from tornado import web

from ..errors import GatewayError
from ..session import is_https

if TYPE_CHECKING:
    from .jupyterhub import JupyterHubAuthenticator

log = logging.getLogger("jhub_gateway.hub_service.auth")

TOKEN_COOKIE = "jhub-gateway-hub-login"
STATE_COOKIE = "jhub-gateway-hub-login-state"
STATE_MAX_AGE = 600


class CookieSealer:
    """Encrypts and authenticates small JSON payloads for cookies (Fernet)."""

    def __init__(self, secret: bytes) -> None:
        key = hmac.new(secret, b"jhub-gateway cookie sealing v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, payload: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(payload).encode()).decode("ascii")

    def unseal(self, value: str, max_age: float) -> dict[str, Any] | None:
        """The payload, or None if forged, damaged or older than ``max_age`` seconds."""
        try:
            data = self._fernet.decrypt(value.encode("ascii"), ttl=max(1, int(max_age)))
            payload = json.loads(data)
        except (InvalidToken, ValueError, UnicodeEncodeError):
            return None
        return payload if isinstance(payload, dict) else None


def read_token_cookie(
    handler: web.RequestHandler, sealer: CookieSealer, max_age: float
) -> str | None:
    """The hub token from the login cookie, or None without a valid cookie."""
    raw = handler.get_cookie(TOKEN_COOKIE)
    if not raw:
        return None
    payload = sealer.unseal(raw, max_age)
    token = payload.get("t") if payload else None
    return token if isinstance(token, str) and token else None


def _safe_next(next_url: str, default: str) -> str:
    # only local absolute paths: anything else would make us an open redirector
    if next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return default


def _is_https(handler: web.RequestHandler) -> bool:
    return is_https(handler.request)


class _OAuthHandler(web.RequestHandler):
    def initialize(self, auth: JupyterHubAuthenticator) -> None:
        self.auth = auth

    def check_xsrf_cookie(self) -> None:
        # GET-only routes; the OAuth state parameter is the CSRF protection here
        return

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, GatewayError):
            self.set_status(exc.status)
            message = exc.message
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message
        else:
            message = "login failed; see the gateway log"
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"{self.get_status()} {self._reason}: {message}\n")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, GatewayError | web.HTTPError):
            log.info("login step refused: %s %s", self.request.path, type(value).__name__)
        else:
            super().log_exception(typ, value, tb)


class OAuthLoginHandler(_OAuthHandler):
    """Starts a login: remembers state + PKCE verifier in a cookie, sends the browser to the hub."""

    def get(self) -> None:
        next_url = _safe_next(self.get_argument("next", ""), self.auth.cookie_path)
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        sealed = self.auth.sealer.seal({"s": state, "n": next_url, "v": verifier})
        self.set_cookie(
            STATE_COOKIE,
            sealed,
            path=self.auth.cookie_path,
            httponly=True,
            samesite="Lax",
            secure=_is_https(self),
            max_age=STATE_MAX_AGE,
        )
        query = {
            "client_id": self.auth.oauth_client_id,
            "redirect_uri": self.auth.oauth_callback_url,
            "response_type": "code",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        self.redirect(self.auth.authorize_url + "?" + urlencode(query))


class OAuthCallbackHandler(_OAuthHandler):
    """Finishes a login: checks state, trades the code for a token, sets the login cookie."""

    async def get(self) -> None:
        error = self.get_argument("error", None)
        if error:
            description = self.get_argument("error_description", error)
            raise web.HTTPError(400, f"the hub refused the login: {description[:200]}")
        code = self.get_argument("code", None)
        state = self.get_argument("state", None)
        if not code or not state:
            raise web.HTTPError(400, "OAuth callback without code or state; log in again")
        raw = self.get_cookie(STATE_COOKIE)
        remembered = self.auth.sealer.unseal(raw, STATE_MAX_AGE) if raw else None
        if not remembered or not hmac.compare_digest(str(remembered.get("s", "")), state):
            raise web.HTTPError(
                403, "OAuth state does not match (expired or another login); log in again"
            )
        self.clear_cookie(STATE_COOKIE, path=self.auth.cookie_path)
        token = await self.auth.exchange_code(code, str(remembered.get("v", "")))
        identity = await self.auth.identify(token)  # refuses tokens without the access scope
        log.info("browser login for %s", identity.user.name)
        self.set_cookie(
            TOKEN_COOKIE,
            self.auth.sealer.seal({"t": token}),
            path=self.auth.cookie_path,
            httponly=True,
            samesite="Lax",
            secure=_is_https(self),
            max_age=int(self.auth.cookie_max_age),
        )
        self.redirect(_safe_next(str(remembered.get("n", "")), self.auth.cookie_path))


class LogoutHandler(_OAuthHandler):
    """Forgets the login cookie here; the hub session is the hub's business."""

    def get(self) -> None:
        token = read_token_cookie(self, self.auth.sealer, self.auth.cookie_max_age)
        if token:
            self.auth.forget(token)
        self.clear_cookie(TOKEN_COOKIE, path=self.auth.cookie_path)
        sessions = self.settings.get("sessions")
        if sessions is not None:  # the gateway's own session cookie must go too
            sessions.clear(self)
        self.redirect(self.auth.hub_public_url + "logout")


def oauth_handlers(auth: JupyterHubAuthenticator, prefix: str, callback_path: str) -> list[tuple]:
    """Routes for ``prefix``; the callback is also served at the registered callback path."""
    kwargs = {"auth": auth}
    routes = [
        (prefix + "oauth_login", OAuthLoginHandler, kwargs),
        (prefix + "oauth_callback", OAuthCallbackHandler, kwargs),
        (prefix + "logout", LogoutHandler, kwargs),
    ]
    if callback_path and callback_path != prefix + "oauth_callback":
        routes.append((callback_path, OAuthCallbackHandler, kwargs))
    return [(re.escape(path) + "$", handler, kw) for path, handler, kw in routes]
