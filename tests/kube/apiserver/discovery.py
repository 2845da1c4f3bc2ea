"""Discovery documents and the OpenAPI v3 index kubectl consults before applying."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ALL_VERBS, Registry, ResourceType

VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(name)
    if not name or not versions:
        return None
    return dict(_group(name, versions), kind="APIGroup", apiVersion="v1")


def _sub(rt: ResourceType, sub: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": ["get", "patch", "update"],
    }
    if sub == "scale":
        entry.update(group="autoscaling", version="v1", kind="Scale")
    elif sub == "log":
        entry["verbs"] = ["get"]
    elif sub == "binding":
        entry.update(kind="Binding", verbs=["create"])
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = []
    for rt in sorted(types, key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ALL_VERBS,
            "storageVersionHash": hashlib.sha256(rt.qualified.encode()).hexdigest()[:11],
        }
        if rt.short_names:
            entry["shortNames"] = rt.short_names
        if rt.categories:
            entry["categories"] = rt.categories
        resources.append(entry)
        resources += [_sub(rt, s) for s in sorted(rt.subresources)]
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}  # fmt: skip


# -- OpenAPI v3 ---------------------------------------------------------------

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
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


def openapi_gv(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        base = (
            f"{prefix}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else (f"{prefix}/{rt.plural}")
        )
        paths[f"{base}/{{name}}"] = _ops(rt, rt.kind)
        paths[base] = {"post": dict(_ops(rt, rt.kind)["put"], **{"x-kubernetes-action": "post"})}
        if rt.custom:
            # Built-in kinds get no schema: kubectl then uses its compiled-in types.
            schema = dict(rt.schema or {"type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True})  # fmt: skip
            schema["x-kubernetes-group-version-kind"] = [
                {"group": rt.group, "version": rt.version, "kind": rt.kind}
            ]
            schemas[_schema_name(rt)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            doc = json.dumps(openapi_gv(registry, group, version), sort_keys=True)
            digest = hashlib.sha512(doc.encode()).hexdigest()[:64].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
