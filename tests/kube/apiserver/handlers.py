"""HTTP routing of the Kubernetes REST paths onto the verbs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import discovery, errors, openapi_docs, proto
from .logs import serve_log
from .resources import Registry, ResourceType
from .tables import to_table, wants_table
from .verbs import Api
from .watch import serve_watch

log = logging.getLogger(__name__)
_NOT_FOUND = errors.ApiError(404, "NotFound", "the server could not find the requested resource")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


def _raw_json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _strict(request: web.Request) -> bool:
    return request.query.get("fieldValidation", "") == "Strict"


def _dry(api: Api, request: web.Request) -> contextlib.AbstractContextManager[None]:
    """Around one synchronous verb only: nothing else runs while the store is dry."""
    return api.store.dry_run(bool(request.query.getall("dryRun", [])))


def _manager(request: web.Request) -> str:
    """``fieldManager``, else what a real server derives: the User-Agent's first word."""
    manager = request.query.get("fieldManager", "")
    if manager:
        return manager
    agent = request.headers.get("User-Agent", "").split("/")[0].strip()
    return agent or "unknown"


class Router:
    def __init__(self, api: Api, registry: Registry, log_dir: Path | None) -> None:
        self.api = api
        self.registry = registry
        self.log_dir = log_dir
        self.stopping = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        log.debug("request %s %s (%s)", request.method, request.path_qs, request.content_type)
        try:
            return await self._route(request)
        except errors.ApiError as exc:
            return _json(exc.status(), exc.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path)
            return _json(errors.ApiError(500, "InternalError", str(exc)).status(), 500)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type == proto.CONTENT_TYPE:
            try:
                return proto.decode(raw)
            except proto.ProtobufError as exc:
                raise errors.bad_request(f"error decoding protobuf request body: {exc}") from None
        if "protobuf" in request.content_type or "cbor" in request.content_type:
            raise errors.unsupported_media(
                f"the body of the request was in an unknown format: {request.content_type}"
            )
        try:
            if "yaml" in request.content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from None

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/apis", "/version", "/openapi/v2", "/openapi/v3"]})
        head = parts[0]
        if parts == ["version"]:
            return _json(discovery.VERSION)
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "openapi":
            return self._openapi(parts[1:])
        if head == "api":
            if len(parts) == 1:
                return _json(discovery.api_versions(request.host))
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json(discovery.api_group_list(self.registry))
            if len(parts) == 2:
                return _json(self._or_404(discovery.api_group(self.registry, parts[1])))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _NOT_FOUND
        if not rest:
            return _json(self._or_404(discovery.resource_list(self.registry, group, version)))
        return await self._resource(request, group, version, rest)

    @staticmethod
    def _or_404(doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise _NOT_FOUND
        return doc

    def _openapi(self, parts: list[str]) -> web.Response:
        if parts == ["v2"]:
            return _raw_json(openapi_docs.openapi_v2(self.registry))
        if parts == ["v3"]:
            return _json(openapi_docs.openapi_root(self.registry))
        if len(parts) >= 3 and parts[0] == "v3":
            doc = None
            if parts[1] == "api" and len(parts) == 3:
                doc = openapi_docs.openapi_gv(self.registry, "", parts[2])
            elif parts[1] == "apis" and len(parts) == 4:
                doc = openapi_docs.openapi_gv(self.registry, parts[2], parts[3])
            if doc is not None:
                return _raw_json(doc)
        raise _NOT_FOUND

    async def _resource(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                ns, rest = rest[1], rest[2:]
        rt = self.registry.get(group, version, rest[0])
        if rt is None or len(rest) > 3 or (ns is not None and not rt.namespaced):
            raise _NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if name is not None and rt.namespaced and ns is None:
            raise _NOT_FOUND
        dry = request.query.getall("dryRun", [])
        if any(d != "All" for d in dry):
            raise errors.bad_request(f"unsupported dryRun value {dry!r}: only All is allowed")
        method = request.method
        if name is None:
            return await self._collection(request, rt, ns, method)
        obj_ns = ns or ""
        if sub is None:
            return await self._object(request, rt, obj_ns, name, method)
        return await self._subresource(request, rt, obj_ns, name, sub, method)

    async def _collection(
        self, request: web.Request, rt: ResourceType, ns: str | None, method: str
    ) -> web.StreamResponse:
        q = request.query
        table = wants_table(request.headers.get("Accept", ""))
        if method == "GET":
            if _truthy(q.get("watch")):
                return await serve_watch(request, self.api, rt, ns, table)
            try:
                limit = int(q.get("limit") or 0)
            except ValueError:
                raise errors.bad_request(f"invalid limit {q.get('limit')!r}") from None
            listed = self.api.list(rt, ns, q.get("labelSelector"), q.get("fieldSelector"),
                                   limit, q.get("continue", ""))  # fmt: skip
            if table:
                rv = listed["metadata"]["resourceVersion"]
                doc = to_table(rt, listed["items"], rv, q.get("includeObject", ""))
                doc["metadata"] = dict(listed["metadata"])
                return _json(doc)
            return _json(listed)
        if method == "POST":
            if rt.namespaced and ns is None:
                raise _NOT_FOUND
            body = await self._body(request)
            with _dry(self.api, request):
                created = self.api.create(rt, ns or "", body, _strict(request), _manager(request))
            return _json(created, 201)
        if method == "DELETE":
            opts = await self._delete_options(request)
            with _dry(self.api, request):
                deleted = self.api.delete_collection(
                    rt, ns, q.get("labelSelector"), q.get("fieldSelector"), opts
                )
            return _json(deleted)
        raise errors.method_not_allowed()

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        opts = await self._body(request)
        if not isinstance(opts, dict):
            opts = {}
        q = request.query
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            opts["orphanDependents"] = _truthy(q["orphanDependents"])
        return opts

    async def _object(
        self, request: web.Request, rt: ResourceType, ns: str, name: str, method: str
    ) -> web.StreamResponse:
        if method == "GET":
            obj = self.api.get(rt, ns, name)
            if wants_table(request.headers.get("Accept", "")):
                rv = obj["metadata"]["resourceVersion"]
                return _json(to_table(rt, [obj], rv, request.query.get("includeObject", "")))
            return _json(obj)
        if method == "PUT":
            body = await self._body(request)
            with _dry(self.api, request):
                updated = self.api.update(
                    rt, ns, name, body, None, _strict(request), _manager(request)
                )
            return _json(updated)
        if method == "PATCH":
            return _json(await self._patch(request, rt, ns, name, None))
        if method == "DELETE":
            opts = await self._delete_options(request)
            with _dry(self.api, request):
                obj, removed = self.api.delete(rt, ns, name, opts)
            return _json(obj, 200 if removed else 202)
        raise errors.method_not_allowed()

    async def _patch(
        self, request: web.Request, rt: ResourceType, ns: str, name: str, sub: str | None
    ) -> dict[str, Any]:
        ctype = request.headers.get("Content-Type", "")
        raw = await request.read()
        apply = ctype.startswith("application/apply-patch")
        manager = request.query.get("fieldManager", "") if apply else _manager(request)
        force = _truthy(request.query.get("force"))
        with _dry(self.api, request):
            return self.api.patch(rt, ns, name, ctype, raw, sub, _strict(request), manager, force)

    async def _subresource(
        self, request: web.Request, rt: ResourceType, ns: str, name: str, sub: str, method: str
    ) -> web.StreamResponse:
        if sub not in rt.subresources:
            raise _NOT_FOUND
        if sub == "log":
            if method != "GET":
                raise errors.method_not_allowed()
            return await serve_log(request, self.api, rt, ns, name, self.log_dir, self.stopping)
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed()
            body = await self._body(request)
            with _dry(self.api, request):
                return _json(self.api.bind(ns, name, body), 201)
        if sub == "scale":
            if method == "GET":
                return _json(self.api.get_scale(rt, self.api.must_get(rt, ns, name)))
            if method == "PUT":
                body = await self._body(request)
                with _dry(self.api, request):
                    return _json(self.api.update_scale(rt, ns, name, body))
        if sub == "status" and method == "GET":
            return _json(self.api.get(rt, ns, name))
        if method == "PUT":
            body = await self._body(request)
            with _dry(self.api, request):
                return _json(self.api.update(rt, ns, name, body, sub, _strict(request)))
        if method == "PATCH":
            return _json(await self._patch(request, rt, ns, name, sub))
        raise errors.method_not_allowed()
