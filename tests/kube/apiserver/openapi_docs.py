"""OpenAPI v2 and v3 documents: built-in kinds from their real schemas, plus CRDs.

kubectl reads ``/openapi/v3`` (explain, and whether the server validates fields),
Helm and older clients ``/openapi/v2``. Documents are built once per registry
revision (CRDs change it) and kept serialised.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import openapi
from .discovery import VERSION
from .resources import Registry, ResourceType

_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}


def _ops(rt: ResourceType, action_kind: str) -> dict[str, Any]:
    gvk = {"group": rt.group, "version": rt.version, "kind": action_kind}
    ok = {"200": {"description": "OK"}}

    def op(action: str, params: list[str], body_types: tuple[str, ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operationId": f"{action}{rt.kind}",
            "parameters": [_query(p) for p in params],
            "responses": ok,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        if body_types:
            schema = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
            out["requestBody"] = {"content": {t: {"schema": schema} for t in body_types}}
        return out

    write = ["dryRun", "fieldManager", "fieldValidation"]
    patch_types = (
        _PATCH_TYPES if not rt.custom else tuple(t for t in _PATCH_TYPES if "strategic" not in t)
    )
    return {
        "get": op("get", []),
        "put": op("put", write, ("*/*",)),
        "patch": op("patch", [*write, "force"], patch_types),
        "delete": op("delete", ["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
    }


def _schema_name(rt: ResourceType) -> str:
    if not rt.custom:
        name = openapi.definition_name(rt.group, rt.version, rt.kind)
        if name:
            return name
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


def _crd_schema(rt: ResourceType) -> dict[str, Any]:
    schema = dict(rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    schema["x-kubernetes-group-version-kind"] = [
        {"group": rt.group, "version": rt.version, "kind": rt.kind}
    ]
    return schema


def _gv_doc(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    builtin = []
    for rt in types:
        base = (
            f"{prefix}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else (f"{prefix}/{rt.plural}")
        )
        paths[f"{base}/{{name}}"] = _ops(rt, rt.kind)
        paths[base] = {"post": dict(_ops(rt, rt.kind)["put"], **{"x-kubernetes-action": "post"})}
        if rt.custom:
            schemas[_schema_name(rt)] = _crd_schema(rt)
        elif openapi.definition_name(rt.group, rt.version, rt.kind):
            builtin.append(_schema_name(rt))
    schemas.update(openapi.v3_schemas(builtin))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


_cache: dict[tuple[int, int, str, str], bytes | None] = {}


def openapi_gv(registry: Registry, group: str, version: str) -> bytes | None:
    """The serialised v3 document of one group/version (None if not served)."""
    key = (id(registry), registry.revision, group, version)
    if key not in _cache:
        if len(_cache) > 256:
            _cache.clear()
        doc = _gv_doc(registry, group, version)
        _cache[key] = None if doc is None else json.dumps(doc).encode()
    return _cache[key]


def openapi_root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            # Built-in schemas are fixed: the kinds and CRD schemas decide the hash.
            parts = [(rt.plural, rt.kind, _crd_schema(rt) if rt.custom else None)
                     for rt in registry.in_group_version(group, version)]  # fmt: skip
            text = json.dumps(sorted(parts, key=lambda p: p[0]), sort_keys=True)
            digest = hashlib.sha512(text.encode()).hexdigest()[:64].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def openapi_v2(registry: Registry) -> bytes:
    key = (id(registry), registry.revision, "swagger", "v2")
    if key not in _cache:
        definitions = openapi.v2_definitions()
        for rt in registry.all():
            if rt.custom:
                definitions[_schema_name(rt)] = _crd_schema(rt)
        doc = {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": {},
            "definitions": definitions,
        }
        _cache[key] = json.dumps(doc).encode()
    return _cache[key] or b""
