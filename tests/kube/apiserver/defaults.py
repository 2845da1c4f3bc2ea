"""Defaulting and light validation of the built-in kinds the chart and tests use."""

from __future__ import annotations

import base64
import datetime
import re
from typing import Any

from . import kinds
from .errors import cause
from .resources import ResourceType


def now(offset: float = 0) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names must be DNS labels rather than subdomains.
_LABEL_NAMED = {"namespaces", "services"}
# RBAC names are path segments and may hold ':' (system:...).
_FREE_NAMED = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}


def validate_name(rt: ResourceType, name: str) -> list[dict[str, str]]:
    if rt.plural in _FREE_NAMED:
        ok = bool(name) and "/" not in name and name not in (".", "..")
    elif rt.plural in _LABEL_NAMED:
        ok = len(name) <= 63 and bool(_DNS_LABEL.match(name))
    else:
        ok = len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))
    if ok:
        return []
    return [cause("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 name must '
                  "consist of lower case alphanumeric characters, '-' or '.'")]  # fmt: skip


def _container_defaults(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("imagePullPolicy", "IfNotPresent")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _container_defaults(c)


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Fill in what the real API server defaults (only fields someone reads)."""
    spec = obj.get("spec")
    if rt.plural == "pods" and isinstance(spec, dict):
        pod_spec_defaults(spec)
    elif rt.plural in ("deployments", "replicasets", "statefulsets") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if rt.plural == "deployments":
            spec.setdefault("progressDeadlineSeconds", 600)
            if not spec.get("strategy"):
                spec.pop("strategy", None)  # protobuf bodies carry an empty struct
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate",
                 "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            )  # fmt: skip
        template_spec = (spec.get("template") or {}).get("spec")
        if isinstance(template_spec, dict):
            pod_spec_defaults(template_spec)
    elif rt.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        if not data:
            obj.pop("data")
    elif rt.plural in kinds.PLURALS:
        kinds.apply_defaults(rt.plural, obj, pod_spec_defaults)


def initial_status(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Status on create: clients cannot set it (it belongs to controllers)."""
    if rt.custom:
        if "status" in rt.subresources:
            obj.pop("status", None)
    elif rt.plural == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif rt.plural == "namespaces":
        obj["status"] = {"phase": "Active"}
    elif rt.plural == "services":
        obj["status"] = {"loadBalancer": {}}
    elif rt.plural in ("deployments", "replicasets", "statefulsets") or (
        rt.plural in kinds.PLURALS and "status" in rt.subresources
    ):
        obj["status"] = {}


def _container_causes(pod_spec: dict[str, Any], prefix: str) -> list[dict[str, str]]:
    """Names a real API server requires: every container's, and every env entry's."""
    errors = []
    for field in ("initContainers", "containers"):
        for n, container in enumerate(pod_spec.get(field) or []):
            here = f"{prefix}.{field}[{n}]"
            if not container.get("name"):
                errors.append(cause(f"{here}.name", "Required value", "FieldValueRequired"))
            for e, entry in enumerate(container.get("env") or []):
                if not (isinstance(entry, dict) and entry.get("name")):
                    errors.append(cause(f"{here}.env[{e}].name", "Required value",
                                        "FieldValueRequired"))  # fmt: skip
    return errors


def validate_builtin(rt: ResourceType, obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec") or {}
    errors: list[dict[str, str]] = []
    if rt.plural == "pods":
        if not spec.get("containers"):
            errors.append(cause("spec.containers", "Required value", "FieldValueRequired"))
        errors += _container_causes(spec, "spec")
    elif rt.plural in ("deployments", "replicasets", "statefulsets"):
        if not spec.get("selector"):
            errors.append(cause("spec.selector", "Required value", "FieldValueRequired"))
        template = (spec.get("template") or {}).get("spec") or {}
        if not template.get("containers"):
            errors.append(cause("spec.template.spec.containers", "Required value",
                                "FieldValueRequired"))  # fmt: skip
        errors += _container_causes(template, "spec.template.spec")
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            errors.append(cause("spec.replicas", f"Invalid value: {replicas}: must be greater "
                                "than or equal to 0"))  # fmt: skip
    elif rt.plural == "customresourcedefinitions":
        names = spec.get("names") or {}
        for field in ("group",):
            if not spec.get(field):
                errors.append(cause(f"spec.{field}", "Required value", "FieldValueRequired"))
        for field in ("plural", "kind"):
            if not names.get(field):
                errors.append(cause(f"spec.names.{field}", "Required value",
                                    "FieldValueRequired"))  # fmt: skip
        expected = f"{names.get('plural')}.{spec.get('group')}"
        if obj["metadata"].get("name") != expected:
            errors.append(cause("metadata.name", f'Invalid value: "{obj["metadata"].get("name")}"'
                                f': must be spec.names.plural+"."+spec.group'))  # fmt: skip
        if not spec.get("versions"):
            errors.append(cause("spec.versions", "Required value", "FieldValueRequired"))
        elif sum(bool(v.get("storage")) for v in spec["versions"]) != 1:
            errors.append(cause("spec.versions", "Invalid value: must have exactly one version "
                                "marked as storage version"))  # fmt: skip
    if rt.plural in kinds.PLURALS:
        errors += kinds.validate(rt.plural, obj)
    return errors
