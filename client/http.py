"""The HTTP side of the client: one aiohttp session, auth, proxies, error mapping."""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
import yarl

from . import config
from .auth import GatewayAuth, split_pre_request
from .errors import error_for_status

log = logging.getLogger("jhub_gateway.client")

# The server long-polls up to ~20 s on ?wait; reads must outlast that, but a
# dead server must not hang a notebook forever.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)

EXTENSIONS_HEADER = "X-Gateway-Extensions"


def proxy_settings() -> tuple[bool, yarl.URL | None, dict[str, str] | None]:
    """``(trust_env, proxy, proxy_headers)`` from ``gateway.http-client.proxy``.

    ``true`` honours HTTP(S)_PROXY and NO_PROXY (aiohttp's trust_env),
    ``false`` disables proxies, a string is an explicit proxy URL whose
    credentials become a Proxy-Authorization header.
    """
    setting = config.get("http-client.proxy", True)
    if isinstance(setting, str) and setting.strip().lower() in ("true", "false"):
        setting = setting.strip().lower() == "true"
    if setting is True:
        return True, None, None
    if setting in (False, None, ""):
        return False, None, None
    if not isinstance(setting, str):
        raise TypeError(f"gateway.http-client.proxy must be a bool or URL, got {setting!r}")
    url = yarl.URL(setting)
    headers = None
    if url.user:
        raw = f"{url.user}:{url.password or ''}".encode("latin1")
        headers = {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    return False, url.with_user(None), headers


class HTTPClient:
    """Sends API requests, answering 401 challenges and keeping the auth cookie."""

    def __init__(self, auth: GatewayAuth) -> None:
        self.auth = auth
        self._trust_env, self._proxy, self._proxy_headers = proxy_settings()
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # unsafe=True: keep cookies for IP-address hosts, common for
            # gateways; the session only ever talks to one server.
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                trust_env=self._trust_env,
                timeout=_TIMEOUT,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _send(
        self,
        method: str,
        url: str,
        json: Any,
        headers: dict[str, str] | None,
        read: bool = True,
    ) -> aiohttp.ClientResponse:
        session = self._get_session()
        # Ask our server for the optional fields (reason, message, workers...) that the
        # upstream client would choke on; other servers ignore the header.
        headers = {EXTENSIONS_HEADER: "1", **(headers or {})}
        proxy_headers = self._proxy_headers
        if proxy_headers and url.startswith("http:"):
            # Plain-HTTP requests go to the proxy as they are (no CONNECT), so
            # the proxy credentials must ride on the request itself.
            headers = {**headers, **proxy_headers}
            proxy_headers = None
        resp = await session.request(
            method,
            url,
            json=json,
            headers=headers,
            proxy=self._proxy,
            proxy_headers=proxy_headers,
        )
        if read:
            # Read the body now so the connection is released whatever happens next.
            await resp.read()
        return resp

    async def _authorized(
        self, method: str, url: str, json: Any, headers: dict[str, str], read: bool
    ) -> aiohttp.ClientResponse:
        session = self._get_session()
        # With an auth cookie the server knows us already; otherwise schemes
        # that can (hub tokens) authenticate up front and save a 401 round trip.
        has_cookie = any(True for _ in session.cookie_jar.filter_cookies(yarl.URL(url)))
        upfront = None if has_cookie else self.auth.initial_headers()
        resp = await self._send(method, url, json, {**headers, **(upfront or {})}, read)
        if resp.status == 401 and not upfront:
            resp.release()
            challenge, context = split_pre_request(self.auth.pre_request(resp))
            resp = await self._send(method, url, json, {**headers, **(challenge or {})}, read)
            self.auth.post_response(resp, context)
        if resp.status >= 400:
            text = await resp.text()
            exc = error_for_status(resp.status, text, url)
            if exc is not None:
                raise exc
            resp.raise_for_status()
        return resp

    async def request(self, method: str, url: str, json: Any = None) -> Any:
        """Send a request; return the decoded JSON body (None if empty).

        Raises the mapped gateway exception for 401/403/404/409/422/5xx and
        aiohttp.ClientResponseError for any other error status.
        """
        resp = await self._authorized(method, url, json, {}, read=True)
        body = await resp.read()
        if not body:
            return None
        return await resp.json(content_type=None)

    async def open_stream(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET ``url`` authenticated like :meth:`request`, the body left to the caller to
        read as it arrives (and to release)."""
        return await self._authorized("GET", url, None, headers, read=False)
