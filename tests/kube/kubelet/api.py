"""Thin raw-JSON access to the Kubernetes REST API through kubernetes_asyncio.

The kubelet works on plain dicts (``metadata.labels['x']`` field paths, JSON
patches of whole ``status`` blocks) so it uses ``ApiClient.call_api`` with
``_preload_content=False`` instead of the typed models; authentication, TLS and
the kubeconfig handling stay those of the unmodified client library.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

log = logging.getLogger(__name__)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server, carrying the decoded Status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:200]
        super().__init__(f"{status} {reason}: {message}")


class RawApi:
    """JSON-in/JSON-out calls against the API server named in a kubeconfig."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.client = api_client

    @classmethod
    async def from_kubeconfig(cls, kubeconfig: Path) -> RawApi:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg))

    @property
    def host(self) -> str:
        return str(self.client.configuration.host)

    async def close(self) -> None:
        await self.client.close()

    async def _call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None,
        body: Any,
        content_type: str,
        timeout: Any,
    ) -> aiohttp.ClientResponse:
        return await self.client.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> dict:
        resp = await self._call(method, path, query, body, content_type, timeout)
        try:
            data = await resp.read()
        finally:
            resp.release()
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = data.decode(errors="replace")
        if resp.status >= 300:
            raise ApiError(resp.status, decoded)
        return decoded if isinstance(decoded, dict) else {}

    async def watch(
        self, path: str, resource_version: str, on_line: Callable[[dict], bool]
    ) -> None:
        """Stream one watch until the server ends it or ``on_line`` returns False."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "240",
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
        resp = await self._call("GET", path, query, None, "application/json", timeout)
        try:
            if resp.status >= 300:
                raise ApiError(resp.status, (await resp.read()).decode(errors="replace"))
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip() and not on_line(json.loads(line)):
                        return
        finally:
            resp.release()


def key_of(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


EventHandler = Callable[[str, dict], None]


class Informer:
    """List-then-watch cache of one resource collection, relisting on 410 Gone."""

    def __init__(self, api: RawApi, path: str, handler: EventHandler) -> None:
        self.api = api
        self.path = path
        self.handler = handler
        self.cache: dict[tuple[str, str], dict] = {}
        self.synced = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                rv = await self._relist()
                while rv:
                    rv = await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("informer %s failed, relisting: %s", self.path, exc)
                await asyncio.sleep(1)

    async def _relist(self) -> str:
        data = await self.api.request("GET", self.path)
        fresh = {key_of(o): o for o in data.get("items", [])}
        for key in list(self.cache):
            if key not in fresh:
                self._apply("DELETED", self.cache[key])
        for obj in fresh.values():
            self._apply("MODIFIED" if key_of(obj) in self.cache else "ADDED", obj)
        self.synced.set()
        return str(data.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, rv: str) -> str:
        """Run one watch; return the version to resume from, or "" to relist."""
        state = {"rv": rv}

        def on_line(event: dict) -> bool:
            etype, obj = event.get("type"), event.get("object") or {}
            if etype == "ERROR":
                # 410 Gone (or any error): the only safe recovery is a relist.
                state["rv"] = ""
                return False
            state["rv"] = obj.get("metadata", {}).get("resourceVersion", state["rv"])
            if etype != "BOOKMARK":
                self._apply(str(etype), obj)
            return True

        try:
            await self.api.watch(self.path, rv, on_line)
        except ApiError as exc:
            if exc.status == 410:
                return ""
            raise
        return state["rv"]

    def _apply(self, etype: str, obj: dict) -> None:
        key = key_of(obj)
        if etype == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        try:
            self.handler(etype, obj)
        except Exception:
            log.exception("informer %s handler failed", self.path)
