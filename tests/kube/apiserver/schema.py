"""OpenAPI v3 structural schemas of CRDs: pruning, defaulting and validation.

Order follows the real API server: unknown fields are pruned, defaults applied,
then the object is validated; violations come back as Status causes.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import cause

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def prune(
    schema: dict[str, Any],
    value: Any,
    root: bool = False,
    removed: list[str] | None = None,
    path: str = "",
) -> Any:
    """Drop fields the schema does not declare; their paths are added to ``removed``."""
    prefix = f"{path}." if path else ""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource"):
            root = True
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        out = {}
        for key, item in value.items():
            if root and key in _ROOT_KEEP:
                out[key] = item
            elif props is not None and key in props:
                out[key] = prune(props[key], item, False, removed, prefix + key)
            elif isinstance(addl, dict):
                out[key] = prune(addl, item, False, removed, prefix + key)
            elif addl is True or preserve:
                out[key] = item
            elif removed is not None:
                removed.append(prefix + key)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            prune(schema["items"], item, False, removed, f"{path}[{n}]")
            for n, item in enumerate(value)
        ]
    return value


def default(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = default(sub, value[key])
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            props = schema.get("properties") or {}
            for key in value:
                if key not in props:
                    value[key] = default(addl, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [default(schema["items"], item) for item in value]
    return value


def _type_ok(schema: dict[str, Any], value: Any) -> str | None:
    """The expected type name if ``value`` does not have it, else None."""
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return None if ok else "integer or string"
    expected = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }
    if expected in checks and not checks[expected](value):
        return str(expected)
    return None


def _describe(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "integer" if isinstance(value, int) else "number"
    )


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[dict[str, str]]:
    here = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return []
        return [cause(here, 'Invalid value: "null": field is required', "FieldValueRequired")]
    expected = _type_ok(schema, value)
    if expected:
        msg = f'Invalid value: "{_describe(value)}": {here} in body must be of type {expected}: '
        msg += f'"{_describe(value)}"'
        return [cause(here, msg, "FieldValueTypeInvalid")]
    errors: list[dict[str, str]] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        errors.append(
            cause(
                here,
                f"Unsupported value: {value!r}: supported values: {allowed}",
                "FieldValueNotSupported",
            )  # fmt: skip
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                errors.append(cause(here, f"Invalid value: {value}: {here} in body should be "
                                          f"greater than or equal to {low}"))  # fmt: skip
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") and value == high):
                errors.append(cause(here, f"Invalid value: {value}: {here} in body should be "
                                          f"less than or equal to {high}"))  # fmt: skip
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(cause(here, f"Invalid value: {value!r}: {here} in body should be at "
                                      f"least {schema['minLength']} chars long"))  # fmt: skip
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(cause(here, f"Too long: may not be more than {schema['maxLength']} "
                                      "bytes", "FieldValueTooLong"))  # fmt: skip
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(cause(here, f"Invalid value: {value!r}: {here} in body should match "
                                      f"'{schema['pattern']}'"))  # fmt: skip
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(cause(here, f"Invalid value: {len(value)}: {here} in body should have "
                                      f"at least {schema['minItems']} items"))  # fmt: skip
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(cause(here, f"Too many: {len(value)}: must have at most "
                                      f"{schema['maxItems']} items", "FieldValueTooMany"))  # fmt: skip
        items = schema.get("items")
        if isinstance(items, dict):
            for n, item in enumerate(value):
                errors += validate(items, item, f"{path}[{n}]")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        prefix = f"{path}." if path else ""
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(cause(f"{prefix}{key}", "Required value", "FieldValueRequired"))
        addl = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                errors += validate(props[key], item, f"{prefix}{key}")
            elif isinstance(addl, dict):
                errors += validate(addl, item, f"{prefix}{key}")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            errors.append(cause(here, f"should have at least {schema['minProperties']} "
                                      "properties"))  # fmt: skip
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(cause(here, f"should have at most {schema['maxProperties']} "
                                      "properties"))  # fmt: skip
    for sub in schema.get("allOf") or []:
        errors += validate(sub, value, path)
    if schema.get("anyOf") and all(validate(s, value, path) for s in schema["anyOf"]):
        errors.append(cause(here, "must validate at least one schema (anyOf)"))
    if schema.get("oneOf"):
        passing = sum(not validate(s, value, path) for s in schema["oneOf"])
        if passing != 1:
            errors.append(cause(here, "must validate one and only one schema (oneOf)"))
    if isinstance(schema.get("not"), dict) and not validate(schema["not"], value, path):
        errors.append(cause(here, "must not validate the schema (not)"))
    return errors


def admit(
    schema: dict[str, Any] | None, obj: dict[str, Any], removed: list[str] | None = None
) -> tuple[dict, list[dict]]:
    """Prune, default and validate a custom object; returns (object, causes)."""
    if not schema:
        return obj, []
    obj = prune(schema, obj, root=True, removed=removed)
    obj = default(schema, obj)
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    sub = dict(schema)
    sub["properties"] = {
        k: v for k, v in (schema.get("properties") or {}).items() if k not in _ROOT_KEEP
    }
    sub["required"] = [k for k in schema.get("required") or [] if k not in _ROOT_KEEP]
    return obj, validate(sub, body)
