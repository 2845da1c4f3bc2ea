"""Authenticate gateway callers against JupyterHub (API tokens and the hub's OAuth).

Every credential is checked with ``GET {api_url}/user`` sent with the *caller's*
token, so validation needs no hub permissions of our own; the answer (user,
admin flag, groups, scopes) is cached for ``cache_ttl`` seconds under a hash of
the token. The service's own token is only used as the OAuth client secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Bool, Float, Integer, Unicode, default, validate

from jhub_gateway.models import User

from ..errors import Forbidden, ServiceUnavailable, Unauthorized
from .base import Authenticator
from .cache import SingleFlightCache, token_key
from .hub_oauth import CookieSealer, oauth_handlers, read_token_cookie

if TYPE_CHECKING:
    from tornado.web import RequestHandler

#: Authorization schemes carrying a hub token: upstream dask-gateway's client
#: sends ``jupyterhub``; JupyterHub's own tools send ``token`` or ``Bearer``.
TOKEN_SCHEMES = ("jupyterhub", "token", "bearer")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class HubConfigError(ValueError):
    """The authenticator cannot work with the configuration it was given."""


@dataclass(frozen=True)
class HubIdentity:
    """What the hub told us about one token."""

    user: User
    scopes: frozenset[str]


def _env(name: str, fallback: str = "") -> str:
    return os.environ.get(name) or fallback


def _slash(value: str) -> str:
    return value if value.endswith("/") else value + "/"


class JupyterHubAuthenticator(Authenticator):
    """Users are whoever their JupyterHub token (or hub OAuth cookie) says.

    Configured like a hub-managed service, from the ``JUPYTERHUB_*`` environment
    the hub (or the Helm chart) provides; every trait overrides its variable.
    """

    challenge = "jupyterhub"

    api_token = Unicode(
        help="This service's own hub API token (env JUPYTERHUB_API_TOKEN); also the OAuth client secret.",
        config=True,
    )
    api_url = Unicode(
        help="The hub's REST API, e.g. http://hub:8081/hub/api (env JUPYTERHUB_API_URL).",
        config=True,
    )
    service_name = Unicode(
        help="Name the service is registered under in the hub (env JUPYTERHUB_SERVICE_NAME); "
        "tokens need access:services!service=<name>.",
        config=True,
    )
    base_url = Unicode(help="The hub's base URL (env JUPYTERHUB_BASE_URL).", config=True)
    service_prefix = Unicode(
        help="Path the hub proxy routes to this service (env JUPYTERHUB_SERVICE_PREFIX).",
        config=True,
    )
    service_url = Unicode(
        help="Where the hub proxy sends service traffic (env JUPYTERHUB_SERVICE_URL); informational.",
        config=True,
    )
    oauth_client_id = Unicode(
        help="OAuth client id registered in the hub (env JUPYTERHUB_CLIENT_ID, default service-<name>).",
        config=True,
    )
    oauth_callback_url = Unicode(
        help="OAuth redirect URI registered in the hub (env JUPYTERHUB_OAUTH_CALLBACK_URL, "
        "default <service_prefix>oauth_callback).",
        config=True,
    )
    hub_public_url = Unicode(
        help="The hub as browsers reach it, for the OAuth authorize redirect "
        "(env JUPYTERHUB_PUBLIC_HUB_URL, default <base_url>hub/).",
        config=True,
    )
    check_scopes = Bool(
        True,
        help="Require access:services!service=<name> (or access:services) on every token. "
        "Turning this off lets any valid hub token in, and is logged as a warning.",
        config=True,
    )
    cache_ttl = Float(
        60.0,
        help="Seconds a hub answer about a token is reused; revocations take effect after this. "
        "0 asks the hub on every request.",
        config=True,
    )
    max_cache_entries = Integer(10_000, help="Upper bound on cached token answers.", config=True)
    hub_timeout = Float(
        10.0, help="Seconds to wait for the hub API before answering 503.", config=True
    )
    hub_ca_file = Unicode(
        None,
        allow_none=True,
        help="CA bundle to verify an https hub API with (default: system CAs).",
        config=True,
    )
    cookie_secret = Unicode(
        None,
        allow_none=True,
        help="Hex key (>= 32 bytes) sealing the OAuth cookies. Default: derived from api_token, "
        "so every replica agrees without sharing a file.",
        config=True,
    )
    cookie_max_age = Float(
        24 * 3600.0,
        help="Seconds a browser OAuth cookie is kept (the token inside is still re-checked "
        "with the hub every cache_ttl).",
        config=True,
    )

    @default("api_token")
    def _default_api_token(self) -> str:
        return _env("JUPYTERHUB_API_TOKEN")

    @default("api_url")
    def _default_api_url(self) -> str:
        return _env("JUPYTERHUB_API_URL").rstrip("/")

    @default("service_name")
    def _default_service_name(self) -> str:
        return _env("JUPYTERHUB_SERVICE_NAME")

    @default("base_url")
    def _default_base_url(self) -> str:
        return _slash(_env("JUPYTERHUB_BASE_URL", "/"))

    @default("service_prefix")
    def _default_service_prefix(self) -> str:
        return _slash(
            _env("JUPYTERHUB_SERVICE_PREFIX", f"{self.base_url}services/{self.service_name}/")
        )

    @default("service_url")
    def _default_service_url(self) -> str:
        return _env("JUPYTERHUB_SERVICE_URL")

    @default("oauth_client_id")
    def _default_client_id(self) -> str:
        return _env("JUPYTERHUB_CLIENT_ID", f"service-{self.service_name}")

    @default("oauth_callback_url")
    def _default_callback_url(self) -> str:
        return _env("JUPYTERHUB_OAUTH_CALLBACK_URL", self.service_prefix + "oauth_callback")

    @default("hub_public_url")
    def _default_hub_public_url(self) -> str:
        return _slash(_env("JUPYTERHUB_PUBLIC_HUB_URL", self.base_url + "hub/"))

    @validate("base_url", "service_prefix", "hub_public_url")
    def _slash_terminated(self, proposal: dict) -> str:
        # traitlets skips validators for dynamic defaults, hence _slash there too
        return _slash(proposal["value"])

    @validate("api_url")
    def _strip_api_url(self, proposal: dict) -> str:
        return proposal["value"].rstrip("/")

    @validate("cache_ttl", "hub_timeout", "cookie_max_age")
    def _non_negative(self, proposal: dict) -> float:
        if proposal["value"] < 0:
            raise ValueError(f"{proposal['trait'].name} must be >= 0")
        return proposal["value"]

    @validate("cookie_secret")
    def _check_secret(self, proposal: dict) -> str | None:
        value = proposal["value"]
        if value is None:
            return None
        try:
            if len(bytes.fromhex(value)) < 32:
                raise ValueError
        except ValueError:
            raise ValueError(
                "JupyterHubAuthenticator.cookie_secret must be >= 32 bytes of hex "
                "(try: openssl rand -hex 32)"
            ) from None
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._http: AsyncHTTPClient | None = None
        self._cache: SingleFlightCache[HubIdentity] = SingleFlightCache(0)
        self._sealer: CookieSealer | None = None
        self._route_prefix = ""

    # -- lifecycle ---------------------------------------------------------

    async def setup(self) -> None:
        if not self.api_token:
            raise HubConfigError(
                "JupyterHub auth needs the service's hub API token: set JUPYTERHUB_API_TOKEN "
                "(or c.JupyterHubAuthenticator.api_token)"
            )
        if not self.api_url:
            raise HubConfigError(
                "JupyterHub auth needs the hub API URL: set JUPYTERHUB_API_URL, e.g. "
                "http://127.0.0.1:8081/hub/api (or c.JupyterHubAuthenticator.api_url)"
            )
        if self.check_scopes and not self.service_name:
            raise HubConfigError(
                "JupyterHub auth checks access:services!service=<name> but has no service name: "
                "set JUPYTERHUB_SERVICE_NAME (or c.JupyterHubAuthenticator.service_name), "
                "or set check_scopes=False to accept any hub token"
            )
        if not self.check_scopes:
            self.log.warning(
                "JupyterHub scope check disabled (check_scopes=False): any valid hub token, "
                "of any user or service, may use this gateway"
            )
        secret = (
            bytes.fromhex(self.cookie_secret)
            if self.cookie_secret
            else hmac.new(
                self.api_token.encode(), b"jhub-gateway hub-oauth cookie", hashlib.sha256
            ).digest()
        )
        self._sealer = CookieSealer(secret)
        self._cache = SingleFlightCache(
            self.cache_ttl,
            self.max_cache_entries,
            cache_errors=(Unauthorized, Forbidden),
            on_lookup=self._observe_cache,
        )
        self._http = AsyncHTTPClient(force_instance=True, max_clients=64)
        self.log.info(
            "JupyterHub auth: hub API %s, service %r, scope check %s, cache %.0fs",
            self.api_url,
            self.service_name,
            "on" if self.check_scopes else "off",
            self.cache_ttl,
        )

    async def cleanup(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self._cache.clear()

    # -- request authentication ---------------------------------------------

    @property
    def required_scopes(self) -> tuple[str, ...]:
        """Either of these scopes admits a token."""
        return (f"access:services!service={self.service_name}", "access:services")

    async def authenticate(self, handler: RequestHandler) -> User:
        token, from_cookie = self._request_token(handler)
        if token is None:
            raise Unauthorized(
                "JupyterHub authentication required: send 'Authorization: token "
                "<JupyterHub API token>' or log in through the hub"
            )
        if from_cookie and handler.request.method not in SAFE_METHODS and not _same_origin(handler):
            raise Forbidden(
                "cross-site request with the hub login cookie refused; use an Authorization header",
                reason="cross_site",
            )
        identity = await self.identify(token)
        return identity.user

    def _request_token(self, handler: RequestHandler) -> tuple[str | None, bool]:
        """The request's hub token (Authorization header first, then the login cookie),
        and whether it came from the cookie."""
        token = self.token_from_header(handler.request.headers.get("Authorization"))
        if token is not None:
            return token, False
        return read_token_cookie(handler, self.sealer, self.cookie_max_age), True

    @staticmethod
    def token_from_header(header: str | None) -> str | None:
        """The token in an Authorization header, None if absent; 401 if malformed."""
        if header is None:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in TOKEN_SCHEMES:
            raise Unauthorized(
                f"unsupported Authorization scheme {scheme[:20]!r}: send "
                "'Authorization: token <JupyterHub API token>' (or 'jupyterhub'/'Bearer')"
            )
        value = value.strip()
        if not value or not value.isascii() or not value.isprintable() or " " in value:
            raise Unauthorized(
                f"malformed Authorization header: expected '{scheme} <token>' with one token"
            )
        return value

    async def identify(self, token: str) -> HubIdentity:
        """The hub's answer for ``token`` (cached), if it may use this service; else 401/403/503."""
        identity = await self._lookup(token)
        if self.check_scopes and not identity.scopes.intersection(self.required_scopes):
            raise Forbidden(
                f"this token lacks the scope {self.required_scopes[0]} (or access:services); "
                "ask your hub admin to grant it",
                reason="missing_scope",
            )
        return identity

    async def has_scope(self, handler: RequestHandler, scope: str) -> bool:
        token, _ = self._request_token(handler)
        if token is None:
            return False
        identity = await self._lookup(token)
        return scope in identity.scopes

    def hub_api(self) -> JupyterHubAuthenticator:
        return self  # hub_get and own_scopes below, with the service's own token

    async def hub_get(self, path: str) -> Any:
        """GET ``path`` of the hub API with the service's own token; the decoded JSON.

        Raises ServiceUnavailable when the hub cannot be reached or does not answer 200.
        """
        code, body = await self._hub_request(
            HTTPRequest(
                self.api_url + path,
                headers={
                    "Authorization": f"token {self.api_token}",
                    "Accept": "application/jupyterhub-pagination+json",
                },
            )
        )
        if code != 200:
            raise self._unavailable(f"hub API answered {code} to {path.split('?')[0]}")
        try:
            return json.loads(body)
        except ValueError:
            raise self._unavailable("hub API sent invalid JSON") from None

    async def own_scopes(self) -> set[str]:
        """The scopes of the service's own token, as the hub reports them."""
        model = await self.hub_get("/user")
        scopes = model.get("scopes") if isinstance(model, dict) else None
        return {s for s in scopes or () if isinstance(s, str)}

    async def _lookup(self, token: str) -> HubIdentity:
        return await self._cache.get(token_key(token), lambda: self._ask_hub(token))

    def forget(self, token: str) -> None:
        """Drop a cached answer (e.g. after the caller logged out)."""
        self._cache.discard(token_key(token))

    async def _ask_hub(self, token: str) -> HubIdentity:
        code, body = await self._hub_request(
            HTTPRequest(
                self.api_url + "/user",
                headers={"Authorization": f"token {token}", "Accept": "application/json"},
            )
        )
        if code in (401, 403, 404):
            # the hub answers 403 for unknown, expired and revoked tokens alike
            raise Unauthorized("the JupyterHub token is invalid, expired or revoked")
        if code != 200:
            raise self._unavailable(f"hub API answered {code}")
        try:
            model = json.loads(body)
            identity = self._identity(model)
        except (ValueError, TypeError, KeyError):
            raise self._unavailable("hub API sent an unexpected user model") from None
        self.log.debug("hub identified %s", identity.user.name)
        return identity

    @staticmethod
    def _identity(model: dict) -> HubIdentity:
        name = model["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("no name")
        kind = model.get("kind", "user")
        if kind == "service":
            name = f"service:{name}"
        elif ":" in name:
            # keep hub user names from colliding with the service:<name> namespace
            name = f"{kind}:{name}"
        groups = frozenset(g for g in model.get("groups") or () if isinstance(g, str))
        scopes = frozenset(s for s in model.get("scopes") or () if isinstance(s, str))
        user = User(name=name, admin=bool(model.get("admin", False)), groups=groups)
        return HubIdentity(user=user, scopes=scopes)

    async def _hub_request(self, request: HTTPRequest) -> tuple[int, bytes]:
        if self._http is None:
            raise ServiceUnavailable("JupyterHub auth is not set up (service starting or stopping)")
        request.request_timeout = self.hub_timeout or None
        request.connect_timeout = self.hub_timeout or None
        if self.hub_ca_file:
            request.ca_certs = self.hub_ca_file
        started = time.monotonic()
        try:
            response = await self._http.fetch(request, raise_error=False)
        except Exception as exc:  # connection refused, DNS, TLS, timeout: all mean "hub away"
            self._observe_hub(599, started)
            raise self._unavailable(f"cannot reach the hub API ({type(exc).__name__})") from None
        self._observe_hub(response.code, started)
        if response.code == 599:
            raise self._unavailable("cannot reach the hub API (connection failed or timed out)")
        return response.code, response.body or b""

    def _observe_cache(self, hit: bool) -> None:
        if self.metrics is not None:
            self.metrics.observe_auth_cache(hit)

    def _observe_hub(self, code: int, started: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_hub_request(code, time.monotonic() - started)

    def _unavailable(self, why: str) -> ServiceUnavailable:
        self.log.warning("JupyterHub auth unavailable: %s", why)
        return ServiceUnavailable(
            f"cannot verify credentials with JupyterHub right now ({why}); retry shortly"
        )

    # -- browser login (OAuth) -----------------------------------------------

    @property
    def sealer(self) -> CookieSealer:
        if self._sealer is None:
            raise ServiceUnavailable("JupyterHub auth is not set up (service starting or stopping)")
        return self._sealer

    @property
    def cookie_path(self) -> str:
        return self._route_prefix or self.service_prefix

    @property
    def authorize_url(self) -> str:
        return self.hub_public_url + "api/oauth2/authorize"

    def login_url(self, next_url: str) -> str:
        """Where to send a browser without a login cookie; it comes back to ``next_url``."""
        return f"{self.cookie_path}oauth_login?" + urlencode({"next": next_url})

    def extra_handlers(self, prefix: str) -> list[tuple]:
        self._route_prefix = prefix if prefix.endswith("/") else prefix + "/"
        callback_path = urlparse(self.oauth_callback_url).path
        return oauth_handlers(self, self._route_prefix, callback_path)

    async def exchange_code(self, code: str, code_verifier: str) -> str:
        """Trade an OAuth authorization code for the user's token (one hub request)."""
        form = {
            "client_id": self.oauth_client_id,
            "client_secret": self.api_token,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.oauth_callback_url,
            "code_verifier": code_verifier,
        }
        status, body = await self._hub_request(
            HTTPRequest(
                self.api_url + "/oauth2/token",
                method="POST",
                body=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        )
        if 400 <= status < 500:
            raise Unauthorized(f"the hub refused the OAuth login (HTTP {status}); log in again")
        if status != 200:
            raise self._unavailable(f"hub OAuth token endpoint answered {status}")
        try:
            token = json.loads(body)["access_token"]
        except (ValueError, KeyError, TypeError):
            raise self._unavailable("hub OAuth token endpoint sent no access_token") from None
        if not isinstance(token, str) or not token:
            raise self._unavailable("hub OAuth token endpoint sent no access_token")
        return token


def _same_origin(handler: RequestHandler) -> bool:
    """Whether a state-changing, cookie-authenticated request came from our own pages."""
    headers = handler.request.headers
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")  # same-site includes other users' subdomains
    origin = headers.get("Origin")
    return origin is not None and urlparse(origin).netloc == handler.request.host
