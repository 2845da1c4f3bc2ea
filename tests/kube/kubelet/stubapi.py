"""A deliberately small in-process Kubernetes REST stand-in.

Only for exercising the kubelet while the full API server emulator
(``tests/kube/apiserver``) is not available: generic namespaced CRUD, list,
watch (including client-go's ``sendInitialEvents`` streaming lists), JSON and
merge patch, ``pods/binding``, graceful pod deletion. No validation, no
selectors, no resourceVersion history (a watch starts "now").
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from pathlib import Path

from aiohttp import web

_KINDS = {
    "pods": "Pod", "services": "Service", "endpointslices": "EndpointSlice",
    "secrets": "Secret", "configmaps": "ConfigMap", "nodes": "Node", "namespaces": "Namespace",
    "customresourcedefinitions": "CustomResourceDefinition",
    # Traefik CRDs (plural -> kind)
    "ingressroutes": "IngressRoute", "ingressroutetcps": "IngressRouteTCP",
    "ingressrouteudps": "IngressRouteUDP", "middlewares": "Middleware",
    "middlewaretcps": "MiddlewareTCP", "tlsoptions": "TLSOption", "tlsstores": "TLSStore",
    "traefikservices": "TraefikService", "serverstransports": "ServersTransport",
    "serverstransporttcps": "ServersTransportTCP",
}  # fmt: skip
Key = tuple[str, str, str, str]  # group/version prefix, resource, namespace, name


def _kind(res: str) -> str:
    return _KINDS.get(res, res.title())


def _json_patch(doc: dict, ops: list[dict]) -> None:
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = doc
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target.setdefault(p, {})
        last = parts[-1]
        if op["op"] in ("add", "replace") and isinstance(target, dict):
            target[last] = op["value"]
        elif op["op"] == "add":
            target.insert(len(target) if last == "-" else int(last), op["value"])
        elif op["op"] == "replace":
            target[int(last)] = op["value"]
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]


def _merge(a: dict, b: dict) -> None:
    for k, v in b.items():
        if v is None:
            a.pop(k, None)
        elif isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
    body.update(reason=reason, code=code, message=message)
    return web.json_response(body, status=code)


class StubApiServer:
    def __init__(self) -> None:
        self.store: dict[Key, dict] = {}
        self.rv = 1
        self.watchers: list[tuple[str, str, str | None, asyncio.Queue]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _bump(self, obj: dict, etype: str, key: Key) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        for prefix, res, ns, queue in self.watchers:
            if (prefix, res) == key[:2] and ns in (None, key[2]):
                queue.put_nowait({"type": etype, "object": copy.deepcopy(obj)})

    @staticmethod
    def _parse(path: str) -> tuple[str, str, str | None, str | None, str | None]:
        parts = path.strip("/").split("/")
        prefix, rest = ("v1", parts[2:]) if parts[0] == "api" else ("/".join(parts[1:3]), parts[3:])
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        rest += [None, None]  # type: ignore[list-item]
        return prefix, rest[0], ns, rest[1], rest[2]

    async def handle(self, req: web.Request) -> web.StreamResponse:
        prefix, res, ns, name, sub = self._parse(req.path)
        if name is None and req.method == "GET":
            if req.query.get("watch") in ("true", "1"):
                return await self._watch(req, prefix, res, ns)
            items = [
                copy.deepcopy(o)
                for k, o in self.store.items()
                if k[:2] == (prefix, res) and ns in (None, k[2])
            ]
            meta = {"resourceVersion": str(self.rv)}
            body = {"kind": _kind(res) + "List", "apiVersion": prefix, "metadata": meta}
            return web.json_response({**body, "items": items})
        if name is None and req.method == "POST":
            return await self._create(req, prefix, res, ns)
        key = (prefix, res, ns or "", name or "")
        obj = self.store.get(key)
        if obj is None:
            return _status(404, "NotFound", f'{res} "{name}" not found')
        if req.method == "GET":
            return web.json_response(obj)
        if req.method == "POST" and sub == "binding":
            obj["spec"]["nodeName"] = (await req.json())["target"]["name"]
        elif req.method == "PATCH":
            body = await req.json()
            if req.content_type == "application/json-patch+json":
                _json_patch(obj, body)
            else:
                _merge(obj, body)
        elif req.method == "DELETE":
            return self._delete(req, key, obj)
        self._bump(obj, "MODIFIED", key)
        return web.json_response(obj)

    async def _create(
        self, req: web.Request, prefix: str, res: str, ns: str | None
    ) -> web.Response:
        body = await req.json()
        meta = body.setdefault("metadata", {})
        if ns:
            meta["namespace"] = ns
        key = (prefix, res, ns or "", meta["name"])
        if key in self.store:
            return _status(409, "AlreadyExists", f'{res} "{meta["name"]}" already exists')
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ"))
        body.setdefault("kind", _kind(res))
        body.setdefault("apiVersion", prefix)
        if res == "pods":
            body.setdefault("status", {"phase": "Pending"})
        self.store[key] = body
        self._bump(body, "ADDED", key)
        return web.json_response(body, status=201)

    def _delete(self, req: web.Request, key: Key, obj: dict) -> web.Response:
        grace = req.query.get("gracePeriodSeconds")
        if key[1] == "pods" and grace != "0" and obj["spec"].get("nodeName"):
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ")
                default = obj["spec"].get("terminationGracePeriodSeconds", 30)
                meta["deletionGracePeriodSeconds"] = int(grace or default)
                self._bump(obj, "MODIFIED", key)
            return web.json_response(obj)
        del self.store[key]
        self._bump(obj, "DELETED", key)
        return web.json_response(obj)

    async def _watch(
        self, req: web.Request, prefix: str, res: str, ns: str | None
    ) -> web.StreamResponse:
        queue: asyncio.Queue = asyncio.Queue()
        entry = (prefix, res, ns, queue)
        self.watchers.append(entry)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)
        try:
            if req.query.get("sendInitialEvents") == "true":
                for k, o in list(self.store.items()):
                    if k[:2] == (prefix, res) and ns in (None, k[2]):
                        await resp.write(
                            json.dumps({"type": "ADDED", "object": o}).encode() + b"\n"
                        )
                meta = {
                    "resourceVersion": str(self.rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                mark = {"kind": _kind(res), "apiVersion": prefix, "metadata": meta}
                await resp.write(json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n")
            while True:
                event = await queue.get()
                await resp.write(json.dumps(event).encode() + b"\n")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.watchers.remove(entry)
        return resp

    async def start(self, kubeconfig: Path) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server = f"http://127.0.0.1:{self.port}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stub", "cluster": {"server": server}}],
            "users": [{"name": "stub", "user": {"token": "stub-token"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
            "current-context": "stub",
        }
        await asyncio.to_thread(kubeconfig.write_text, json.dumps(config))

    async def stop(self) -> None:
        if self.runner is not None:
            with contextlib.suppress(Exception):
                await self.runner.cleanup()
