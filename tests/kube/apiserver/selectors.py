"""Label and field selectors as the list and watch verbs accept them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

# Field selectors every resource supports, plus the ones the kubelet and kubectl use.
FIELD_PATHS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "status.phase": ("status", "phase"),
    "spec.nodeName": ("spec", "nodeName"),
    "type": ("type",),
    "reason": ("reason",),
    "source": ("source", "component"),
    "reportingComponent": ("reportingComponent",),
}
# kubectl describe looks up a pod's events by these.
for _f in ("name", "namespace", "uid", "kind", "apiVersion", "resourceVersion", "fieldPath"):
    FIELD_PATHS[f"involvedObject.{_f}"] = ("involvedObject", _f)
    FIELD_PATHS[f"regarding.{_f}"] = ("regarding", _f)

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` has two terms)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    m = _SET_RE.match(term)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: key not in labels or labels[key] not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = (s.strip() for s in term.partition(op))
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9._/-]+", term):
        return lambda labels: term in labels
    raise bad_request(f"unable to parse requirement: invalid label selector term {term!r}")


def label_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda obj: True
    terms = [_label_term(t) for t in _split_top(selector)]

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in terms)

    return match


def _field_value(obj: dict[str, Any], path: tuple[str, ...]) -> str:
    cur: Any = obj
    for part in path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def field_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda obj: True
    terms = []
    for term in _split_top(selector):
        for op in ("!=", "==", "="):
            if op in term:
                key, _, value = (s.strip() for s in term.partition(op))
                break
        else:
            raise bad_request(f"invalid field selector: {term!r}")
        if key not in FIELD_PATHS:
            raise bad_request(f'field label not supported: "{key}"')
        terms.append((FIELD_PATHS[key], op == "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, p) == v) != negate for p, negate, v in terms)

    return match


def match_labels_selector(selector: dict[str, Any] | None) -> Matcher:
    """A ``metav1.LabelSelector`` (matchLabels/matchExpressions) as a matcher."""
    return label_matcher(label_selector_string(selector))


def label_selector_string(selector: dict[str, Any] | None) -> str:
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)
