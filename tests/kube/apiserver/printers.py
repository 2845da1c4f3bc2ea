"""Table columns of the batch, autoscaling, policy and networking kinds (``kubectl get``).

The columns and cell texts follow kube-apiserver's printers: Job status and
completions, CronJob schedule and last schedule, HPA reference and targets,
PDB budgets, NetworkPolicy selector and Ingress hosts.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

Cells = Callable[[dict[str, Any]], list[Any]]
_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _col(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "", "description": name, "priority": 0}


def _seconds(start: str | None, end: str | None = None) -> int | None:
    if not start:
        return None
    t0 = datetime.datetime.strptime(start, _FORMAT).replace(tzinfo=datetime.timezone.utc)
    t1 = (datetime.datetime.strptime(end, _FORMAT).replace(tzinfo=datetime.timezone.utc)
          if end else datetime.datetime.now(datetime.timezone.utc))  # fmt: skip
    return max(0, int((t1 - t0).total_seconds()))


def duration(secs: int | None) -> str:
    if secs is None:
        return "<none>"
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    return f"{mins // 60}h" if mins < 48 * 60 else f"{mins // 1440}d"


def _job_status(job: dict[str, Any]) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed",
                                                                  "Suspended"):  # fmt: skip
            return str(cond["type"])
    return "Running"


def _job(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    want = spec.get("completions")
    completions = f"{st.get('succeeded', 0)}/{want}" if want is not None else str(
        st.get("succeeded", 0))  # fmt: skip
    return [_job_status(o), completions,
            duration(_seconds(st.get("startTime"), st.get("completionTime")))]  # fmt: skip


def _cronjob(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    last = st.get("lastScheduleTime")
    return [spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            str(bool(spec.get("suspend"))), len(st.get("active") or []),
            duration(_seconds(last)) if last else "<none>"]  # fmt: skip


def _hpa(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    targets = []
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        if "averageUtilization" in target:
            targets.append(f"{resource.get('name')}: <unknown>/{target['averageUtilization']}%")
        else:
            targets.append(f"<unknown>/{target.get('averageValue') or target.get('value')}")
    return [f"{ref.get('kind')}/{ref.get('name')}", ", ".join(targets) or "<none>",
            spec.get("minReplicas", 1), spec.get("maxReplicas"),
            st.get("currentReplicas", 0)]  # fmt: skip


def _pdb(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            st.get("disruptionsAllowed", 0)]  # fmt: skip


def _selector(selector: dict[str, Any] | None) -> str:
    labels = (selector or {}).get("matchLabels") or {}
    exprs = (selector or {}).get("matchExpressions") or []
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    parts += [f"{e.get('key')} {e.get('operator', '').lower()} ({','.join(e.get('values') or [])})"
              for e in exprs]  # fmt: skip
    return ",".join(parts) or "<none>"


def _ingress(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    lb = (st.get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(i.get("ip") or i.get("hostname") or "" for i in lb)
    return [spec.get("ingressClassName") or "<none>", ",".join(hosts) or "*", address,
            "80, 443" if spec.get("tls") else "80"]  # fmt: skip


COLUMNS: dict[str, tuple[list[dict[str, Any]], Cells]] = {
    "jobs": ([_col("Status"), _col("Completions"), _col("Duration")], _job),
    "cronjobs": ([_col("Schedule"), _col("Timezone"), _col("Suspend", "boolean"),
                  _col("Active", "integer"), _col("Last Schedule", "date")], _cronjob),
    "horizontalpodautoscalers": ([_col("Reference"), _col("Targets"),
                                  _col("MinPods", "integer"), _col("MaxPods", "integer"),
                                  _col("Replicas", "integer")], _hpa),
    "poddisruptionbudgets": ([_col("Min Available"), _col("Max Unavailable"),
                              _col("Allowed Disruptions", "integer")], _pdb),
    "networkpolicies": ([_col("Pod-Selector")],
                        lambda o: [_selector((o.get("spec") or {}).get("podSelector"))]),
    "ingresses": ([_col("Class"), _col("Hosts"), _col("Address"), _col("Ports")], _ingress),
}  # fmt: skip
