"""Pure helpers for DaskCluster status: conditions and change detection."""

from __future__ import annotations

from typing import Any


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> list[dict[str, Any]]:
    """Return a new list with condition ``type_`` set.

    ``lastTransitionTime`` only moves when the status flips, as Kubernetes
    conventions require, so re-reconciling an unchanged cluster patches nothing.
    """
    value = "True" if status else "False"
    out = [dict(c) for c in conditions if c.get("type") != type_]
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value else now
    out.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }
    )
    return sorted(out, key=lambda c: str(c["type"]))


def status_changed(current: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    """True when a status patch would change anything (avoids no-op writes)."""
    current = current or {}
    return any(current.get(k) != v for k, v in desired.items())
