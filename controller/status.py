"""Pure helpers for DaskCluster status: conditions, change detection, the patch body."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

PENDING, RUNNING, STOPPING, STOPPED, FAILED = "Pending", "Running", "Stopping", "Stopped", "Failed"
FINAL = (STOPPED, FAILED)


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


def phase_conditions(status: Obj, now: str, *, scaling: bool = False) -> list[Obj]:
    """Ready / Progressing / Failed for the phase, reason and message in ``status``.

    ``Progressing`` is True while the cluster moves towards what its spec asks
    (starting, scaling, stopping) and False once it got there or gave up.
    """
    phase = status.get("phase") or PENDING
    reason = str(status.get("reason") or phase)
    message = str(status.get("message") or "")
    conditions = list(status.get("conditions") or [])
    ready = phase == RUNNING
    failed = phase == FAILED
    progressing = phase in (PENDING, STOPPING) or (ready and scaling)
    if ready:
        progress_reason = "ScalingWorkers" if scaling else "WorkersReady"
    else:
        progress_reason = reason
    conditions = set_condition(conditions, "Ready", ready, reason, "" if ready else message, now)
    conditions = set_condition(
        conditions, "Progressing", progressing, progress_reason, "" if ready else message, now
    )
    return set_condition(
        conditions, "Failed", failed, reason if failed else "NotFailed",
        message if failed else "", now,
    )  # fmt: skip


# Besides the phase, what users and the service act on at once: a status
# change touching any of these is written without delay.
URGENT_KEYS = ("schedulerAddress", "dashboardAddress", "apiAddress", "completionTime")


def must_write_now(current: Obj, desired: Obj, *, scaling: bool) -> bool:
    """Whether a changed status must be written now, or may wait to be batched.

    Urgent: a phase change (``Running`` is when the service answers the client),
    new or cleared addresses, and any status of a Running cluster that has all
    the workers its spec asks for (a ``scale()`` observer waits for exactly
    that). Everything else is progress on the way there (the resource names of
    a Pending cluster, ready-worker counts while scaling, ``observedGeneration``
    and ``Progressing`` of a scale in flight), which a later write carries anyway.
    """
    if (current.get("phase") or PENDING) != (desired.get("phase") or PENDING):
        return True
    if any(current.get(k) != desired.get(k) for k in URGENT_KEYS):
        return True
    return desired.get("phase") == RUNNING and not scaling


def status_patch(current: Obj, desired: Obj) -> Obj:
    """A merge patch turning ``current`` into ``desired`` (keys dropped become null)."""
    patch: Obj = {k: v for k, v in desired.items() if current.get(k) != v}
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
