"""Server-side printing: ``meta.k8s.io/v1`` Tables that ``kubectl get`` asks for."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from . import printers
from .resources import ResourceType

TABLE_ACCEPT = "as=Table"


def wants_table(accept: str) -> bool:
    return TABLE_ACCEPT in accept.replace(" ", "")


def human_age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return "<invalid>"
    secs = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


_FILTER = re.compile(r'^\[\?\(@\.([\w.]+)\s*==\s*["\']([^"\']*)["\']\)\]')


def json_path(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: ``.a.b``, ``[n]``, ``[?(@.k=="v")]``."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.lstrip("$")
    cur = obj
    while path and cur is not None:
        if path.startswith("."):
            m = re.match(r"^\.([^.\[]+)", path)
            if not m:
                return None
            cur = cur.get(m.group(1)) if isinstance(cur, dict) else None
            path = path[m.end() :]
        elif path.startswith("[?"):
            m = _FILTER.match(path)
            if not m or not isinstance(cur, list):
                return None
            key, value = m.group(1), m.group(2)
            cur = next((i for i in cur if str(json_path(i, "." + key)) == value), None)
            path = path[m.end() :]
        elif path.startswith("["):
            m = re.match(r"^\[(\d+)\]", path)
            if not m or not isinstance(cur, list) or int(m.group(1)) >= len(cur):
                return None
            cur = cur[int(m.group(1))]
            path = path[m.end() :]
        else:
            return None
    return cur


def _col(name: str, kind: str = "string", fmt: str = "", desc: str = "", priority: int = 0):
    return {"name": name, "type": kind, "format": fmt, "description": desc or name,
            "priority": priority}  # fmt: skip


NAME_COL = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE_COL = _col("Age", desc="CreationTimestamp is a timestamp representing the server time.")


def _pod_cells(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for s in statuses:
        state = s.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [f"{ready}/{total}", reason, restarts]


def _builtin_columns(rt: ResourceType) -> tuple[list[dict], Callable[[dict], list[Any]]]:
    if not rt.custom and rt.plural in printers.COLUMNS:
        return printers.COLUMNS[rt.plural]
    if rt.plural == "pods":
        cols = [_col("Ready"), _col("Status"), _col("Restarts", "integer")]
        return cols, _pod_cells
    if rt.plural in ("deployments", "replicasets", "statefulsets"):
        cols = [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer")]

        def cells(o: dict[str, Any]) -> list[Any]:
            st = o.get("status") or {}
            want = (o.get("spec") or {}).get("replicas", 1)
            return [f"{st.get('readyReplicas', 0)}/{want}", st.get("updatedReplicas", 0),
                    st.get("availableReplicas", 0)]  # fmt: skip

        return cols, cells
    if rt.plural == "services":
        cols = [_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)")]

        def svc(o: dict[str, Any]) -> list[Any]:
            spec = o.get("spec") or {}
            ports = ",".join(":".join(str(p[k]) for k in ("port", "nodePort") if p.get(k))
                             + f"/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])  # fmt: skip
            lb = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ext = ",".join(i.get("ip") or i.get("hostname", "") for i in lb)
            pending = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
            return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
                    ext or pending, ports or "<none>"]  # fmt: skip

        return cols, svc
    if rt.plural == "namespaces":
        return [_col("Status")], lambda o: [(o.get("status") or {}).get("phase", "Active")]
    return [], lambda o: []


def _custom_columns(rt: ResourceType) -> tuple[list[dict], Callable[[dict], list[Any]]]:
    cols, paths = [], []
    for pc in rt.printer_columns:
        kind = pc.get("type", "string")
        cols.append(_col(pc["name"], kind, pc.get("format", ""), pc.get("description", ""),
                         pc.get("priority", 0)))  # fmt: skip
        paths.append((pc.get("jsonPath", ""), kind))

    def cells(o: dict[str, Any]) -> list[Any]:
        out = []
        for path, kind in paths:
            value = json_path(o, path)
            if kind == "date" and isinstance(value, str):
                value = human_age(value)
            elif isinstance(value, (dict, list)):
                value = str(value)
            out.append(value)
        return out

    return cols, cells


def to_table(
    rt: ResourceType, objs: list[dict[str, Any]], rv: str, include_object: str = "Metadata"
) -> dict[str, Any]:
    if rt.custom and rt.printer_columns:
        extra, cells = _custom_columns(rt)
        columns = [NAME_COL, *extra]

        def row_cells(o: dict[str, Any]) -> list[Any]:
            return [o["metadata"]["name"], *cells(o)]
    else:
        extra, cells = _builtin_columns(rt)
        columns = [NAME_COL, *extra, AGE_COL]

        def row_cells(o: dict[str, Any]) -> list[Any]:
            return [o["metadata"]["name"], *cells(o),
                    human_age(o["metadata"].get("creationTimestamp"))]  # fmt: skip

    rows = []
    for o in objs:
        row: dict[str, Any] = {"cells": row_cells(o)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    }
