"""DaskCluster objects <-> the service's ``Cluster`` model, as pure functions.

The service writes ``spec`` and a few annotations; the controller writes
``status`` and the per-cluster Secret. Every replica derives the same
``Cluster`` from the same objects, which is what makes the backend stateless.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from jhub_gateway.crd import (
    GROUP,
    LABEL_CLUSTER,
    LABEL_UPSTREAM_CLUSTER,
    LABEL_UPSTREAM_INSTANCE,
    LABEL_USER,
    cluster_object,
    instance_labels,
    public_name,
)
from jhub_gateway.models import Cluster, ClusterEvent, ClusterStatus
from jhub_gateway.names import safe_slug

__all__ = [
    "ANNOTATION_GROUPS",
    "ANNOTATION_STOP_MESSAGE",
    "ANNOTATION_STOP_REASON",
    "build_daskcluster",
    "cluster_from_objects",
    "instance_selector",
    "is_active",
    "secret_values",
]

ANNOTATION_GROUPS = f"{GROUP}/owner-groups"
ANNOTATION_STOP_REASON = f"{GROUP}/stop-reason"
ANNOTATION_STOP_MESSAGE = f"{GROUP}/stop-message"
# Keys of the controller's per-cluster Secret (controller/builders/secret.py).
SECRET_TLS_CERT = "tls.crt"
SECRET_TLS_KEY = "tls.key"
SECRET_API_TOKEN = "api-token"
SECRET_PREFIX = "dask-credentials-"

_PHASES = {
    "Pending": ClusterStatus.PENDING,
    "Running": ClusterStatus.RUNNING,
    "Stopping": ClusterStatus.STOPPING,
    "Stopped": ClusterStatus.STOPPED,
    "Failed": ClusterStatus.FAILED,
}


def instance_selector(instance: str) -> str:
    """Label selector of every object of this gateway instance (upstream's key, as the controller)."""
    return f"{LABEL_UPSTREAM_INSTANCE}={instance}"


def build_daskcluster(
    *,
    name: str,
    namespace: str,
    instance: str,
    username: str,
    groups: frozenset[str],
    options: dict[str, Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    """The DaskCluster the service creates: spec per the CRD, labels as the controller's."""
    body = cluster_object(
        name,
        namespace,
        {
            "username": username,
            "active": True,
            "replicas": 0,
            "options": options,
            "config": config,
        },
    )
    body["metadata"]["labels"] = {
        **instance_labels(instance),  # the controller of this instance selects on these
        LABEL_CLUSTER: name,
        LABEL_UPSTREAM_CLUSTER: name,
        LABEL_USER: safe_slug(username),
    }
    # Quotas of the owner's groups apply to the cluster; every replica must see them.
    body["metadata"]["annotations"] = {ANNOTATION_GROUPS: json.dumps(sorted(groups))}
    return body


def is_active(obj: dict[str, Any]) -> bool:
    """Neither asked to stop nor finished: it counts against quotas."""
    if not (obj.get("spec") or {}).get("active", True):
        return False
    phase = (obj.get("status") or {}).get("phase") or "Pending"
    return phase in ("Pending", "Running")


def secret_name(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    return str(status.get("credentials") or SECRET_PREFIX + obj["metadata"]["name"])


def secret_values(secret: dict[str, Any] | None) -> dict[str, str]:
    """Decoded ``data`` of the credentials Secret (empty strings where missing or bad)."""
    data = (secret or {}).get("data") or {}
    out = {}
    for key in (SECRET_TLS_CERT, SECRET_TLS_KEY, SECRET_API_TOKEN):
        try:
            out[key] = base64.b64decode(data.get(key) or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            out[key] = ""
    return out


def _ms(timestamp: Any) -> int | None:
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _status(obj: dict[str, Any]) -> tuple[ClusterStatus, str, str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta_annotations = obj["metadata"].get("annotations") or {}
    phase = _PHASES.get(str(status.get("phase") or "Pending"), ClusterStatus.PENDING)
    reason = str(status.get("reason") or ("Created" if phase == ClusterStatus.PENDING else ""))
    message = str(status.get("message") or "")
    if not spec.get("active", True) and phase.is_active:
        # asked to stop; the controller has not caught up yet
        phase = ClusterStatus.STOPPING
        reason = meta_annotations.get(ANNOTATION_STOP_REASON, "StopRequested")
        message = meta_annotations.get(ANNOTATION_STOP_MESSAGE, "")
    elif not spec.get("active", True) and phase != ClusterStatus.FAILED:
        # the controller's stopping/stopped phases say how, the annotation says who and why
        if ANNOTATION_STOP_REASON in meta_annotations:
            reason = meta_annotations[ANNOTATION_STOP_REASON]
            message = meta_annotations.get(ANNOTATION_STOP_MESSAGE, "")
    return phase, reason, message


def _events(obj: dict[str, Any], start_ms: int) -> list[ClusterEvent]:
    events = [ClusterEvent(start_ms / 1000, "PENDING", "Created", "")]
    for cond in (obj.get("status") or {}).get("conditions") or []:
        when = _ms(cond.get("lastTransitionTime")) or start_ms
        kind = f"{cond.get('type', '')}={cond.get('status', '')}"
        events.append(
            ClusterEvent(when / 1000, kind, str(cond.get("reason") or ""), cond.get("message", ""))
        )
    return sorted(events, key=lambda e: e.time)


def cluster_from_objects(
    obj: dict[str, Any], secret: dict[str, Any] | None, config: dict[str, Any]
) -> Cluster:
    """The service's view of one DaskCluster (``config`` already in ClusterConfig names)."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    state, reason, message = _status(obj)
    start = _ms(meta.get("creationTimestamp")) or _ms(status.get("startTime")) or 0
    stop = _ms(status.get("completionTime")) if state.is_terminal else None
    if state.is_terminal and stop is None:
        stop = start
    creds = secret_values(secret)
    try:
        groups = frozenset(json.loads((meta.get("annotations") or {}).get(ANNOTATION_GROUPS, "[]")))
    except (TypeError, ValueError):
        groups = frozenset()
    return Cluster(
        name=public_name(meta["namespace"], meta["name"]),
        username=str(spec.get("username", "")),
        status=state,
        reason=reason,
        message=message,
        options=dict(spec.get("options") or {}),
        config=config,
        token=creds[SECRET_API_TOKEN],
        tls_cert=creds[SECRET_TLS_CERT],
        tls_key=creds[SECRET_TLS_KEY],
        scheduler_address=str(status.get("schedulerAddress") or ""),
        dashboard_address=str(status.get("dashboardAddress") or ""),
        api_address=str(status.get("apiAddress") or ""),
        start_time=start,
        stop_time=stop,
        target_workers=int(spec.get("replicas") or 0) if state.is_active else 0,
        active_workers=int(status.get("replicas") or 0) if state.is_active else 0,
        owner_groups=groups,
        events=_events(obj, start),
    )
