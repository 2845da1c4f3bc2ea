"""HTTP calls from the scheduler to the gateway API (heartbeat, idle shutdown)."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

# Under "distributed." so the scheduler CLI's logging config shows these lines
# in the scheduler log, where the gateway collects them for cluster events.
log = logging.getLogger("distributed.jhub_gateway.runtime")

CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0


class GatewayClient:
    """Authenticated client for ``{api_url}/v1/clusters/{name}``.

    ``api_url`` is the gateway's API root (``http://host:port/api``); the token
    is the cluster's own token, never logged.
    """

    def __init__(self, api_url: str, cluster_name: str, token: str) -> None:
        self.cluster_url = f"{api_url.rstrip('/')}/v1/clusters/{quote(cluster_name, safe='')}"
        self._token = token
        self._http = AsyncHTTPClient()

    def __repr__(self) -> str:
        return f"GatewayClient({self.cluster_url!r})"

    async def _request(self, method: str, url: str, body: dict[str, Any] | None = None) -> bool:
        headers = {"Authorization": f"token {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=None if body is None else json.dumps(body),
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            follow_redirects=False,
        )
        try:
            await self._http.fetch(request)
        except HTTPClientError as exc:
            log.warning("Gateway %s %s failed: HTTP %s", method, url, exc.code)
            return False
        except OSError as exc:
            # expected while the gateway restarts: the reason, not a traceback per retry
            log.warning("Gateway %s %s failed: %s: %s", method, url, type(exc).__name__, exc)
            return False
        return True

    async def heartbeat(self, message: dict[str, Any]) -> bool:
        """POST a heartbeat; True when the gateway accepted it."""
        return await self._request("POST", f"{self.cluster_url}/heartbeat", message)

    async def stop_cluster(self) -> bool:
        """Ask the gateway to stop this cluster; True when it accepted."""
        return await self._request("DELETE", self.cluster_url)
