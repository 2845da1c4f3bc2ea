"""Defaults and validation of the batch, autoscaling, policy and networking kinds.

Job, CronJob, HorizontalPodAutoscaler (autoscaling/v2), PodDisruptionBudget,
NetworkPolicy and Ingress get what a real API server defaults and the checks
charts trip over, with the real messages; a Job's pod template, selector and
completions are immutable once created.
"""

from __future__ import annotations

from typing import Any

from . import cron
from .errors import cause

JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
PLURALS = frozenset(
    {"jobs", "cronjobs", "horizontalpodautoscalers", "poddisruptionbudgets",
     "networkpolicies", "ingresses"}
)  # fmt: skip
_RESTART = ("OnFailure", "Never")
_CONCURRENCY = ("Allow", "Forbid", "Replace")
_PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
_POLICY_TYPES = ("Ingress", "Egress")

Causes = list[dict[str, str]]


def _job_spec_defaults(spec: dict[str, Any], pod_defaults: Any) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", None)
    if spec.get("manualSelector") is None:
        spec.pop("manualSelector")
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template_spec = (spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        pod_defaults(template_spec)


def _job_labels(obj: dict[str, Any]) -> None:
    """The selector and pod labels the server generates (unless ``manualSelector``)."""
    spec = obj["spec"]
    if spec.get("manualSelector"):
        return
    meta = obj["metadata"]
    uid = meta["uid"]
    wanted = {JOB_UID_LABEL: uid, JOB_NAME_LABEL: meta["name"], "controller-uid": uid,
              "job-name": meta["name"]}  # fmt: skip
    tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
    tmeta["labels"] = dict(tmeta.get("labels") or {}, **wanted)
    spec.setdefault("selector", {"matchLabels": {JOB_UID_LABEL: uid}})


def apply_defaults(plural: str, obj: dict[str, Any], pod_defaults: Any) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        if plural in ("networkpolicies", "poddisruptionbudgets", "ingresses"):
            spec = obj["spec"] = {}
        else:
            return
    if plural == "jobs":
        _job_spec_defaults(spec, pod_defaults)
        _job_labels(obj)
    elif plural == "cronjobs":
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(job_spec, dict):
            _job_spec_defaults(job_spec, pod_defaults)
    elif plural == "horizontalpodautoscalers":
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 80}}}]  # fmt: skip
    elif plural == "networkpolicies":
        spec.setdefault("podSelector", {})
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
        for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
            for port in rule.get("ports") or []:
                port.setdefault("protocol", "TCP")
    elif plural == "ingresses":
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                if path.get("pathType") in ("Exact", "Prefix"):
                    path.setdefault("path", "/")


def _non_negative(spec: dict[str, Any], prefix: str, names: tuple[str, ...]) -> Causes:
    out = []
    for name in names:
        value = spec.get(name)
        if isinstance(value, int) and value < 0:
            out.append(cause(f"{prefix}.{name}", f"Invalid value: {value}: must be greater "
                             "than or equal to 0"))  # fmt: skip
    return out


def _template(template: dict[str, Any] | None, prefix: str) -> Causes:
    pod = (template or {}).get("spec") or {}
    out = []
    if not pod.get("containers"):
        out.append(cause(f"{prefix}.spec.containers", "Required value", "FieldValueRequired"))
    policy = pod.get("restartPolicy")
    if policy not in _RESTART:
        out.append(cause(f"{prefix}.spec.restartPolicy", f'Unsupported value: "{policy}": '
                         'supported values: "OnFailure", "Never"', "FieldValueNotSupported"))  # fmt: skip
    return out


def _job_spec(spec: dict[str, Any], prefix: str) -> Causes:
    out = _non_negative(spec, prefix, ("parallelism", "completions", "backoffLimit",
                                       "activeDeadlineSeconds", "ttlSecondsAfterFinished"))  # fmt: skip
    deadline = spec.get("activeDeadlineSeconds")
    if deadline == 0:
        out.append(cause(f"{prefix}.activeDeadlineSeconds", "Invalid value: 0: must be "
                         "greater than 0"))  # fmt: skip
    out += _template(spec.get("template"), f"{prefix}.template")
    if spec.get("manualSelector"):
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            out.append(cause(f"{prefix}.template.metadata.labels", "Invalid value: "
                             "`selector` does not match template `labels`"))  # fmt: skip
    return out


def _cronjob(spec: dict[str, Any]) -> Causes:
    out = []
    schedule = spec.get("schedule")
    if not schedule:
        out.append(cause("spec.schedule", "Required value", "FieldValueRequired"))
    else:
        try:
            cron.parse(str(schedule))
        except cron.CronError as exc:
            out.append(cause("spec.schedule", f'Invalid value: "{schedule}": {exc}'))
    policy = spec.get("concurrencyPolicy")
    if policy not in _CONCURRENCY:
        out.append(cause("spec.concurrencyPolicy", f'Unsupported value: "{policy}": supported '
                         'values: "Allow", "Forbid", "Replace"', "FieldValueNotSupported"))  # fmt: skip
    zone = spec.get("timeZone")
    if zone and not cron.valid_zone(str(zone)):
        out.append(cause("spec.timeZone", f'Invalid value: "{zone}": unknown time zone {zone}'))
    out += _non_negative(spec, "spec", ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                                        "failedJobsHistoryLimit"))  # fmt: skip
    job = (spec.get("jobTemplate") or {}).get("spec")
    if not isinstance(job, dict):
        out.append(cause("spec.jobTemplate.spec", "Required value", "FieldValueRequired"))
    else:
        out += _job_spec(job, "spec.jobTemplate.spec")
    return out


def _hpa(spec: dict[str, Any]) -> Causes:
    out = []
    ref = spec.get("scaleTargetRef") or {}
    for key in ("kind", "name"):
        if not ref.get(key):
            out.append(cause(f"spec.scaleTargetRef.{key}", "Required value",
                             "FieldValueRequired"))  # fmt: skip
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if not isinstance(high, int):
        out.append(cause("spec.maxReplicas", "Required value", "FieldValueRequired"))
    if isinstance(low, int) and low < 1:
        out.append(cause("spec.minReplicas", f"Invalid value: {low}: must be greater than or "
                         "equal to 1"))  # fmt: skip
    if isinstance(high, int) and isinstance(low, int) and high < low:
        out.append(cause("spec.maxReplicas", f"Invalid value: {high}: must be greater than or "
                         "equal to `minReplicas`"))  # fmt: skip
    for n, metric in enumerate(spec.get("metrics") or []):
        if metric.get("type") not in ("Object", "Pods", "Resource", "ContainerResource",
                                      "External"):  # fmt: skip
            out.append(cause(f"spec.metrics[{n}].type", f'Unsupported value: '
                             f'"{metric.get("type")}"', "FieldValueNotSupported"))  # fmt: skip
    return out


def _pdb(spec: dict[str, Any]) -> Causes:
    if "minAvailable" in spec and "maxUnavailable" in spec:
        return [cause("spec", "Invalid value: minAvailable and maxUnavailable cannot be both "
                      "set")]  # fmt: skip
    out = []
    for key in ("minAvailable", "maxUnavailable"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            out.append(cause(f"spec.{key}", f"Invalid value: {value}: must be greater than or "
                             "equal to 0"))  # fmt: skip
        elif isinstance(value, str) and not (value.endswith("%") and value[:-1].isdigit()):
            out.append(cause(f"spec.{key}", f'Invalid value: "{value}": a valid percent string '
                             "must be a numeric string followed by an ending '%'"))  # fmt: skip
    return out


def _netpol(spec: dict[str, Any]) -> Causes:
    out = []
    for n, ptype in enumerate(spec.get("policyTypes") or []):
        if ptype not in _POLICY_TYPES:
            out.append(cause(f"spec.policyTypes[{n}]", f'Unsupported value: "{ptype}": '
                             'supported values: "Ingress", "Egress"', "FieldValueNotSupported"))  # fmt: skip
    for direction in ("ingress", "egress"):
        for n, rule in enumerate(spec.get(direction) or []):
            for m, port in enumerate(rule.get("ports") or []):
                if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
                    out.append(cause(f"spec.{direction}[{n}].ports[{m}].protocol",
                                     f'Unsupported value: "{port.get("protocol")}"',
                                     "FieldValueNotSupported"))  # fmt: skip
    return out


def _backend(backend: dict[str, Any], prefix: str) -> Causes:
    service = backend.get("service")
    if not service and not backend.get("resource"):
        return [cause(prefix, "Invalid value: one backend must be specified")]
    out = []
    if service:
        if not service.get("name"):
            out.append(cause(f"{prefix}.service.name", "Required value", "FieldValueRequired"))
        port = service.get("port") or {}
        if bool(port.get("name")) == bool(port.get("number")):
            out.append(cause(f"{prefix}.service.port", "Invalid value: cannot set both port "
                             "name & port number" if port.get("name") else "Required value"))  # fmt: skip
    return out


def _ingress(spec: dict[str, Any]) -> Causes:
    out = []
    if not spec.get("rules") and not spec.get("defaultBackend"):
        out.append(cause("spec", "Invalid value: either `defaultBackend` or `rules` must be "
                         "specified"))  # fmt: skip
    if spec.get("defaultBackend"):
        out += _backend(spec["defaultBackend"], "spec.defaultBackend")
    for n, rule in enumerate(spec.get("rules") or []):
        for m, path in enumerate((rule.get("http") or {}).get("paths") or []):
            at = f"spec.rules[{n}].http.paths[{m}]"
            ptype = path.get("pathType")
            if not ptype:
                out.append(cause(f"{at}.pathType", "Required value: pathType must be "
                                 "specified", "FieldValueRequired"))  # fmt: skip
            elif ptype not in _PATH_TYPES:
                out.append(cause(f"{at}.pathType", f'Unsupported value: "{ptype}": supported '
                                 'values: "Exact", "ImplementationSpecific", "Prefix"',
                                 "FieldValueNotSupported"))  # fmt: skip
            elif ptype != "ImplementationSpecific" and not str(path.get("path", "")).startswith(
                "/"
            ):
                out.append(cause(f"{at}.path", f'Invalid value: "{path.get("path")}": must be '
                                 "an absolute path"))  # fmt: skip
            out += _backend(path.get("backend") or {}, f"{at}.backend")
    return out


def validate(plural: str, obj: dict[str, Any]) -> Causes:
    spec = obj.get("spec") or {}
    if plural == "jobs":
        return _job_spec(spec, "spec")
    if plural == "cronjobs":
        return _cronjob(spec)
    if plural == "horizontalpodautoscalers":
        return _hpa(spec)
    if plural == "poddisruptionbudgets":
        return _pdb(spec)
    if plural == "networkpolicies":
        return _netpol(spec)
    if plural == "ingresses":
        return _ingress(spec)
    return []


def validate_update(plural: str, old: dict[str, Any], new: dict[str, Any]) -> Causes:
    """What may not change on update (a Job's template, selector and completions)."""
    if plural != "jobs":
        return []
    out = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    for key in ("template", "selector", "completions", "completionMode"):
        if old_spec.get(key) != new_spec.get(key):
            out.append(cause(f"spec.{key}", "Invalid value: field is immutable"))
    return out
