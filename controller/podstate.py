"""Reading Pod status: pure functions from a Pod dict to what the reconciler decides on."""

from __future__ import annotations

import datetime
from typing import Any

Obj = dict[str, Any]

# Waiting reasons that explain why a container never started, most specific first.
WAITING_REASONS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
)


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp (``2026-12-02T07:50:22Z``, fractions allowed) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def format_time(epoch: float) -> str:
    """Epoch seconds as RFC 3339 UTC with a ``Z`` (whole seconds, as Kubernetes writes)."""
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(pod: Obj) -> bool:
    """Succeeded or Failed: its containers will not run again."""
    return phase(pod) in ("Succeeded", "Failed")


def is_ready(pod: Obj) -> bool:
    if phase(pod) != "Running":
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def not_ready_since(pod: Obj) -> float | None:
    """When the pod last stopped being Ready, else its creation (never Ready yet)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            changed = parse_time(condition.get("lastTransitionTime"))
            if changed is not None:
                return changed
    return created_at(pod)


def pod_ip(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("podIP") or "")


def created_at(pod: Obj) -> float | None:
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _container_statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def exit_code(pod: Obj) -> int | None:
    for cs in _container_statuses(pod):
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") is not None:
            return int(terminated["exitCode"])
    return None


def start_failure(pod: Obj) -> tuple[str, str]:
    """``(reason, message)`` for a pod that has not become ready in time.

    ``Unschedulable`` when no node takes it, a container's waiting reason
    (image pull, crash loop, bad config) when it cannot start, and plain
    ``StartTimeout`` when it runs but never passes its readiness probe.
    """
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return "Unschedulable", str(cond.get("message") or "no node can run the pod")
    waiting = {}
    for cs in _container_statuses(pod):
        w = (cs.get("state") or {}).get("waiting")
        if w and w.get("reason"):
            waiting[str(w["reason"])] = str(w.get("message") or "")
    for reason in WAITING_REASONS:
        if reason in waiting:
            return reason, waiting[reason] or reason
    if waiting:
        reason, message = next(iter(waiting.items()))
        return reason, message or reason
    return "StartTimeout", "the pod did not become ready"
