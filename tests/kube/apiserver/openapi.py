"""Schemas of the built-in kinds, from the definitions ``kubernetes-validate`` ships.

They serve four purposes, as in a real API server: ``/openapi/v2`` and
``/openapi/v3`` documents (kubectl explain, validation), dropping unknown fields of
built-in objects (rejected instead under ``fieldValidation=Strict``), and the list
types (``x-kubernetes-list-type``/``-map-keys``, patch merge keys) that server-side
apply needs.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "v1.37.0-local"
_REF = "#/$defs/"


@cache
def definitions() -> dict[str, Any]:
    # Located, not imported: importing the package pulls in jsonschema (seconds).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("kubernetes-validate is not installed (the test extra needs it)")
    root = Path(list(spec.submodule_search_locations)[0]) / "kubernetes-json-schema"
    path = root / SCHEMA_VERSION / "_definitions.json"
    if not path.exists():  # another release of the package: take its newest plain set
        dirs = sorted((d for d in root.iterdir() if not d.name.endswith("-strict")),
                      key=lambda d: [int(x) for x in d.name[1:].split("-")[0].split(".")])  # fmt: skip
        path = dirs[-1] / "_definitions.json"
    return dict(json.loads(path.read_text())["$defs"])


@cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    out = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            out[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return out


def definition_name(group: str, version: str, kind: str) -> str | None:
    return _by_gvk().get((group, version, kind))


def schema_for(group: str, version: str, kind: str) -> dict[str, Any] | None:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None


def deref(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Follow ``$ref`` (and single-element ``allOf`` wrappers) to the schema itself."""
    for _ in range(20):
        if not isinstance(schema, dict):
            return None
        ref = schema.get("$ref")
        if ref and ref.startswith(_REF):
            schema = definitions().get(ref[len(_REF) :])
            continue
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and "properties" not in schema:
            schema = all_of[0]
            continue
        return schema
    return None


def prune_unknown(schema: dict[str, Any] | None, value: Any, removed: list[str],
                  path: str = "") -> Any:  # fmt: skip
    """Drop fields a built-in kind does not have (a Go struct cannot hold them)."""
    schema = deref(schema)
    if schema is None:
        return value
    prefix = f"{path}." if path else ""
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if props is None:
            if isinstance(addl, dict):
                return {k: prune_unknown(addl, v, removed, prefix + k) for k, v in value.items()}
            return value
        out = {}
        for key, item in value.items():
            if key in props:
                out[key] = prune_unknown(props[key], item, removed, prefix + key)
            else:
                removed.append(prefix + key)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_unknown(schema["items"], v, removed, f"{path}[{n}]")
                for n, v in enumerate(value)]  # fmt: skip
    return value


# -- OpenAPI documents ----------------------------------------------------------------


def _convert(node: Any, ref_prefix: str) -> Any:
    """JSON-schema definitions -> OpenAPI (single types, refs to ``ref_prefix``)."""
    if isinstance(node, list):
        return [_convert(n, ref_prefix) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(_REF):
            out[key] = ref_prefix + value[len(_REF) :]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if types:
                out[key] = types[0]
        elif key == "oneOf" and _is_int_or_string(value):
            out.update(type="string", format="int-or-string")
        elif key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v, ref_prefix) for k, v in value.items()}
        else:
            out[key] = _convert(value, ref_prefix)
    return out


def _is_int_or_string(alternatives: Any) -> bool:
    types = set()
    for alt in alternatives if isinstance(alternatives, list) else []:
        t = alt.get("type") if isinstance(alt, dict) else None
        types |= set(t if isinstance(t, list) else [t]) - {"null"}
    return types == {"string", "integer"}


@cache
def _converted(ref_prefix: str) -> dict[str, Any]:
    return {k: _convert(v, ref_prefix) for k, v in definitions().items()}


def closure(names: list[str]) -> list[str]:
    """``names`` and every definition they reference, transitively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions():
            continue
        seen.add(name)
        text = json.dumps(definitions()[name])
        start = 0
        while (i := text.find('"$ref": "' + _REF, start)) >= 0:
            j = text.index('"', i + 9 + len(_REF))
            todo.append(text[i + 9 + len(_REF) : j])
            start = j
    return sorted(seen)


def v3_schemas(names: list[str]) -> dict[str, Any]:
    conv = _converted("#/components/schemas/")
    return {n: copy.deepcopy(conv[n]) for n in closure(names)}


def v2_definitions() -> dict[str, Any]:
    return dict(_converted("#/definitions/"))
