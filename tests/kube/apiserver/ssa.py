"""Server-side apply: field sets per manager (``managedFields``), merge, prune, conflicts.

A field set is a set of paths in the FieldsV1 vocabulary: ``f:<field>`` steps into
a map, ``k:{"name":"x"}`` picks a keyed list item, ``v:<json>`` a member of a set
list. A set holds leaves (scalars, atomic lists, empty objects) and list items;
the maps between them are implied. Lists are keyed by the merge keys strategic
merge uses for built-in kinds, by ``x-kubernetes-list-type``/``-map-keys`` for
custom resources, and atomic otherwise.

``apply`` follows the real algorithm: fields the manager applied before and no
longer applies are removed unless another manager also owns them; a field
another manager owns with a different value is a conflict (409) unless
``force``, which takes the field over. Non-apply writes (``operation: Update``)
take ownership of what they change away from everyone else.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import errors
from .defaults import now
from .openapi import deref
from .patch import MERGE_KEYS, PORT_KEYS, PRIMITIVE_SETS

Path = tuple[str, ...]
FieldSet = set[Path]
# metadata fields that managers own; the rest belong to the server.
_OWNED_META = ("labels", "annotations", "ownerReferences", "finalizers")


def _list_shape(field: str, items: list[Any], schema: dict[str, Any] | None) -> tuple[str, list]:
    """("map", keys) | ("set", []) | ("atomic", []) for the list in ``field``."""
    schema = deref(schema)
    if schema is not None:
        ltype = schema.get("x-kubernetes-list-type")
        if ltype == "map":
            return "map", list(schema.get("x-kubernetes-list-map-keys") or [])
        if ltype == "set":
            return "set", []
        if ltype is None and schema.get("x-kubernetes-patch-merge-key"):
            return "map", [schema["x-kubernetes-patch-merge-key"]]
        return "atomic", []
    if field in PRIMITIVE_SETS:
        return "set", []
    if not items or not all(isinstance(i, dict) for i in items):
        return "atomic", []
    if field == "ports":
        key = next((k for k in PORT_KEYS if all(k in i for i in items)), None)
        return ("map", [key]) if key else ("atomic", [])
    key = MERGE_KEYS.get(field)
    if key and all(key in i for i in items):
        return "map", [key]
    return "atomic", []


def _sub_schema(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    schema = deref(schema)
    if schema is None:
        return None
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    addl = schema.get("additionalProperties")
    return addl if isinstance(addl, dict) else {}


# Defaults of list-map key fields, so an applied item without them finds its live twin.
_KEY_DEFAULTS = {"protocol": "TCP"}


def _item_key(item: dict[str, Any], keys: list[str]) -> str:
    values = {k: item.get(k, _KEY_DEFAULTS.get(k)) for k in keys}
    return "k:" + json.dumps(values, sort_keys=True, separators=(",", ":"))


def _items_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    schema = deref(schema)
    return None if schema is None else (schema.get("items") or {})


def managed_view(obj: dict[str, Any], status_sub: bool) -> dict[str, Any]:
    """The part of an object managers own (no server-set metadata, no status)."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    if status_sub:
        out.pop("status", None)
    meta = obj.get("metadata") or {}
    owned = {k: meta[k] for k in _OWNED_META if meta.get(k)}
    if owned:
        out["metadata"] = owned
    return out


def field_set(value: Any, schema: dict[str, Any] | None, path: Path = ()) -> FieldSet:
    out: FieldSet = set()
    if not isinstance(value, dict):
        return out
    for key, item in value.items():
        here = (*path, f"f:{key}")
        sub = _sub_schema(schema, key)
        if isinstance(item, dict) and item:
            out |= field_set(item, sub, here)
        elif isinstance(item, list):
            shape, keys = _list_shape(key, item, sub)
            if shape == "map" and keys:
                item_schema = _items_schema(sub)
                for entry in item:
                    kp = (*here, _item_key(entry, keys))
                    out.add(kp)
                    out |= field_set(entry, item_schema, kp)
            elif shape == "set":
                out |= {(*here, "v:" + json.dumps(v)) for v in item}
            else:
                out.add(here)
        else:
            out.add(here)
    return out


def _lookup(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for step in path:
        kind, _, arg = step.partition(":")
        if kind == "f" and isinstance(cur, dict) and arg in cur:
            cur = cur[arg]
        elif kind == "k" and isinstance(cur, list):
            want = json.loads(arg)
            cur = next((i for i in cur if isinstance(i, dict)
                        and _item_key(i, list(want)) == step), None)  # fmt: skip
            if cur is None:
                return False, None
        elif kind == "v" and isinstance(cur, list):
            v = json.loads(arg)
            if v not in cur:
                return False, None
            cur = v
        else:
            return False, None
    return True, cur


def _delete(obj: Any, path: Path) -> None:
    parent_found, parent = _lookup(obj, path[:-1])
    if not parent_found:
        return
    kind, _, arg = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(arg, None)
    elif kind == "k" and isinstance(parent, list):
        keys = list(json.loads(arg))
        parent[:] = [i for i in parent
                     if not (isinstance(i, dict) and _item_key(i, keys) == path[-1])]  # fmt: skip
    elif kind == "v" and isinstance(parent, list):
        v = json.loads(arg)
        parent[:] = [i for i in parent if i != v]


def _drop_empty(obj: Any, path: Path) -> None:
    """After a removal, drop maps/lists on ``path`` that became empty."""
    for n in range(len(path) - 1, 0, -1):
        found, value = _lookup(obj, path[:n])
        if found and value in ({}, []) and path[n - 1].startswith("f:"):
            _delete(obj, path[:n])
        else:
            break


def merge(live: Any, applied: Any, schema: dict[str, Any] | None, field: str = "") -> Any:
    if isinstance(applied, dict) and isinstance(live, dict):
        out = dict(live)
        for key, value in applied.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(live.get(key), value, _sub_schema(schema, key), key)
        return out
    if isinstance(applied, list) and isinstance(live, list):
        shape, keys = _list_shape(field, applied or live, schema)
        if shape == "map" and keys:
            item_schema = _items_schema(schema)
            out_list = list(live)
            for entry in applied:
                k = _item_key(entry, keys)
                idx = next((n for n, i in enumerate(out_list)
                            if isinstance(i, dict) and _item_key(i, keys) == k), None)  # fmt: skip
                if idx is None:
                    out_list.append(copy.deepcopy(entry))
                else:
                    out_list[idx] = merge(out_list[idx], entry, item_schema)
            return out_list
        if shape == "set":
            return list(live) + [v for v in applied if v not in live]
    return copy.deepcopy(applied)


# -- managedFields encoding -------------------------------------------------------


def encode(fields: FieldSet) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in fields:
        node = root
        for step in path:
            node = node.setdefault(step, {})
    for path in fields:
        node = root
        for step in path:
            node = node[step]
        if any(k != "." for k in node):
            node["."] = {}  # owned itself, not only through its children
    return root


def decode(tree: dict[str, Any], path: Path = ()) -> FieldSet:
    out: FieldSet = set()
    for step, child in tree.items():
        if step == ".":
            out.add(path)
            continue
        here = (*path, step)
        if not child:
            out.add(here)
        else:
            out |= decode(child, here)
    return out


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _entry(manager: str, operation: str, api_version: str, fields: FieldSet) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "apiVersion": api_version,
            "time": now(), "fieldsType": "FieldsV1", "fieldsV1": encode(fields)}  # fmt: skip


def _owners(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], FieldSet]]:
    return [(e, decode(e.get("fieldsV1") or {})) for e in entries if not e.get("subresource")]


def _rebuild(
    owners: list[tuple[dict[str, Any], FieldSet]], mine: dict[str, Any] | None
) -> list[dict[str, Any]]:
    out = []
    for entry, fields in owners:
        if fields:
            out.append(dict(entry, fieldsV1=encode(fields)))
    if mine is not None:
        out.append(mine)
    return out


def on_create(obj: dict[str, Any], body: dict[str, Any], manager: str, operation: str,
              schema: dict[str, Any] | None, status_sub: bool) -> None:  # fmt: skip
    fields = field_set(managed_view(body, status_sub), schema)
    entries = [_entry(manager, operation, obj["apiVersion"], fields)] if fields else []
    obj["metadata"]["managedFields"] = entries


def on_update(old: dict[str, Any], new: dict[str, Any], manager: str,
              schema: dict[str, Any] | None, status_sub: bool) -> None:  # fmt: skip
    """A PUT/PATCH by ``manager``: it takes over what it changed."""
    before, after = managed_view(old, status_sub), managed_view(new, status_sub)
    fs_before, fs_after = field_set(before, schema), field_set(after, schema)
    changed = {p for p in fs_after if p not in fs_before or _lookup(before, p) != _lookup(after, p)}
    removed = fs_before - fs_after
    owners = _owners(_entries(old))
    others = [(e, f - changed - removed) for e, f in owners
              if not (e["manager"] == manager and e.get("operation") == "Update")]  # fmt: skip
    mine = next((f for e, f in owners
                 if e["manager"] == manager and e.get("operation") == "Update"), set())  # fmt: skip
    mine = (mine - removed) | changed
    entry = _entry(manager, "Update", new["apiVersion"], mine) if mine else None
    new["metadata"]["managedFields"] = _rebuild(others, entry)


def apply(live: dict[str, Any], applied: dict[str, Any], manager: str, force: bool,
          schema: dict[str, Any] | None, status_sub: bool, qualified: str) -> dict[str, Any]:  # fmt: skip
    """The object after ``manager`` applies ``applied`` onto ``live`` (managedFields set)."""
    config = managed_view(applied, status_sub)
    fields = field_set(config, schema)
    current = managed_view(live, status_sub)
    owners = _owners(_entries(live))
    previous: FieldSet = set()
    others: list[tuple[dict[str, Any], FieldSet]] = []
    for entry, owned in owners:
        if entry["manager"] == manager and entry.get("operation") == "Apply":
            previous = owned
        else:
            others.append((entry, owned))
    conflicts = []
    for entry, owned in others:
        for path in fields & owned:
            if path[-1].startswith(("k:", "v:")):
                continue
            if _lookup(current, path) != _lookup(config, path):
                conflicts.append((entry["manager"], path))
    if conflicts and not force:
        raise _conflict(qualified, live["metadata"]["name"], conflicts)
    if force:
        others = [(e, o - fields) for e, o in others]
    taken = set().union(*(o for _, o in others)) if others else set()
    new = copy.deepcopy(live)
    removed = previous - fields
    # a list item nobody else holds a part of goes as a whole (its key fields with it)
    whole = {p for p in removed if p[-1].startswith(("k:", "v:"))
             and not any(t[: len(p)] == p for t in taken)}  # fmt: skip
    for path in sorted(removed, key=len, reverse=True):
        if path in taken or any(p[: len(path)] == path for p in taken):
            continue
        if any(len(path) > len(w) and path[: len(w)] == w for w in whole):
            continue
        _delete(_owned_root(new, path), path[1:] if path[0] == "f:metadata" else path)
        _drop_empty(_owned_root(new, path), path[1:] if path[0] == "f:metadata" else path)
    body = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind", "metadata")}
    if status_sub:
        body.pop("status", None)
    merged = merge({k: v for k, v in new.items() if k != "metadata"}, body, schema)
    merged["metadata"] = new["metadata"]
    meta_applied = applied.get("metadata") or {}
    meta_schema = _sub_schema(schema, "metadata")
    for key in _OWNED_META:
        if key in meta_applied:
            merged["metadata"][key] = merge(merged["metadata"].get(key), meta_applied[key],
                                            _sub_schema(meta_schema, key), key)  # fmt: skip
    mine = _entry(manager, "Apply", applied.get("apiVersion", live["apiVersion"]), fields)
    merged["metadata"]["managedFields"] = _rebuild(others, mine if fields else None)
    return merged


def _owned_root(obj: dict[str, Any], path: Path) -> dict[str, Any]:
    return obj["metadata"] if path[0] == "f:metadata" else obj


def _conflict(qualified: str, name: str, conflicts: list[tuple[str, Path]]) -> errors.ApiError:
    def show(path: Path) -> str:
        return "." + ".".join(step.partition(":")[2] if step.startswith("f:") else
                              f"[{step.partition(':')[2]}]" for step in path)  # fmt: skip

    causes = [errors.cause(show(p), f'conflict with "{m}"', "FieldManagerConflict")
              for m, p in sorted(conflicts)]  # fmt: skip
    text = (
        f"Apply failed with {len(causes)} conflict{'s' if len(causes) > 1 else ''}: "
        + "; ".join(f"{c['message']}: {c['field']}" for c in causes)
    )
    exc = errors.ApiError(409, "Conflict", text, {"name": name, "kind": qualified.split(".")[0],
                                                   "causes": causes})  # fmt: skip
    return exc
