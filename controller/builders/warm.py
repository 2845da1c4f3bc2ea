"""Warm scheduler pods: pre-started, unassigned schedulers that a new cluster claims.

A warm pod is the scheduler pod a cluster of one *profile* would get, started
before any cluster asks for it: the same image, resources, env and extra pod
and container config, but running ``python -m jhub_gateway.runtime.warm_pod``
(distributed and the gateway runtime imported, waiting for one claim) instead
of the scheduler command, and mounting its own claim Secret instead of a
cluster's credentials. The profile is a hash of the scheduler pod built for a
cluster, without what differs per cluster (names, the cluster's labels and
owner, the Secret's name, the cluster name in the env and the scheduler's
arguments, which the claim delivers); it is a label on warm pods.

A claim turns a warm pod into the cluster's scheduler pod with one merge patch
(:func:`build_claim_patch`): the cluster's labels (ours and upstream's, so its
Service selects it), its annotations and an ownerReference to the DaskCluster
(controller: true), exactly as a cold pod has them. Before that the controller
records the claim in an annotation (:func:`build_claim_mark`), so a warm pod
that was claimed but never relabelled (the controller crashed in between) is
recognisable as garbage, never offered twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jhub_gateway.crd import GROUP, LABEL_COMPONENT
from jhub_gateway.tls import tls_env

from .labels import SCHEDULER, component_labels, instance_selector
from .ownership import cluster_owner_reference
from .pod import CONTAINER_NAME, CREDENTIALS_DIR, CREDENTIALS_VOLUME
from .scheduler import API_PORT, ENV_API_TOKEN, ENV_CLUSTER_NAME, build_scheduler_pod
from .secret import TLS_CERT_KEY, TLS_KEY_KEY, _b64
from .spec import ClusterSpec

__all__ = [
    "ANNOTATION_CLAIMED_AT",
    "ANNOTATION_CLAIMED_BY",
    "CLAIM_PORT",
    "LABEL_PROFILE",
    "WARM",
    "WARM_COMMAND",
    "build_claim_mark",
    "build_claim_patch",
    "build_warm_pod",
    "build_warm_secret",
    "claim_args",
    "is_warmable",
    "scheduler_profile",
    "warm_labels",
    "warm_selector",
]

WARM = "dask-warm-scheduler"
LABEL_PROFILE = f"{GROUP}/warm-profile"
ANNOTATION_CLAIMED_BY = f"{GROUP}/claimed-by"
ANNOTATION_CLAIMED_AT = f"{GROUP}/claimed-at"
CLAIM_PORT, CLAIM_PORT_NAME = 8789, "tcp-claim"
WARM_DIR = "/etc/dask-warm"
WARM_VOLUME = "dask-warm"
WARM_COMMAND = ("python", "-m", "jhub_gateway.runtime.warm_pod")
#: scheduler commands a warm pod can run in its own (already warm) interpreter
KNOWN_SCHEDULER_CMDS = (
    ("dask", "scheduler"),
    ("dask-scheduler",),
    ("python", "-m", "distributed.cli.dask_scheduler"),
)
# Env a warm pod gets only at its claim: it names one cluster's files and cluster.
_CLAIM_ENV = {
    ENV_API_TOKEN,
    ENV_CLUSTER_NAME,
    *tls_env(f"{CREDENTIALS_DIR}/{TLS_CERT_KEY}", f"{CREDENTIALS_DIR}/{TLS_KEY_KEY}"),
}


def warm_labels(instance: str, profile: str) -> dict[str, str]:
    return {**instance_selector(instance), LABEL_COMPONENT: WARM, LABEL_PROFILE: profile}


def warm_selector(instance: str) -> str:
    """Every warm pod and claim Secret of one instance (the SIGTERM cleanup deletes these)."""
    labels = {**instance_selector(instance), LABEL_COMPONENT: WARM}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == CONTAINER_NAME)


def is_warmable(spec: ClusterSpec) -> bool:
    """Whether a warm pod can stand in for this cluster's scheduler at all.

    Its scheduler command must be one that the warm process runs in-process, and
    the operator's extra container config must not replace the container command.
    """
    if tuple(spec.scheduler_cmd) not in KNOWN_SCHEDULER_CMDS:
        return False
    return "command" not in _container(build_scheduler_pod(spec))


def _profile_view(spec: ClusterSpec, pod: dict[str, Any]) -> dict[str, Any]:
    ours = component_labels(spec, SCHEDULER)
    meta = pod["metadata"]
    pod_spec = dict(pod["spec"])
    containers = []
    for container in pod_spec["containers"]:
        container = {k: v for k, v in container.items() if k != "args"}
        if container["name"] == CONTAINER_NAME:
            container["env"] = [e for e in container["env"] if e["name"] != ENV_CLUSTER_NAME]
        containers.append(container)
    pod_spec["containers"] = containers
    pod_spec["volumes"] = [
        {**v, "secret": {**v["secret"], "secretName": ""}} if v["name"] == CREDENTIALS_VOLUME else v
        for v in pod_spec.get("volumes") or []
    ]
    return {
        "namespace": meta["namespace"],
        "labels": {k: v for k, v in meta["labels"].items() if k not in ours},
        "annotations": meta.get("annotations") or {},
        "spec": pod_spec,
    }


def scheduler_profile(spec: ClusterSpec) -> str:
    """The profile of ``spec``'s scheduler pod: 20 hex digits (a label value)."""
    view = _profile_view(spec, build_scheduler_pod(spec))
    return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:20]


def claim_args(spec: ClusterSpec) -> list[str]:
    """The cold scheduler's arguments after its command: what the claim delivers."""
    args = list(_container(build_scheduler_pod(spec))["args"])
    return args[len(spec.scheduler_cmd) :]


def _owner_refs(owner: dict[str, Any] | None) -> dict[str, Any]:
    return {"ownerReferences": [owner]} if owner else {}


def build_warm_secret(
    spec: ClusterSpec, *, name: str, profile: str, tls_cert: str, tls_key: str,
    owner: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """The claim Secret of one warm pod: the key and certificate its claim channel uses."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": warm_labels(spec.instance, profile),
            **_owner_refs(owner),
        },
        "type": "Opaque",
        "immutable": True,
        "data": {TLS_CERT_KEY: _b64(tls_cert), TLS_KEY_KEY: _b64(tls_key)},
    }


def build_warm_pod(
    spec: ClusterSpec, *, name: str, profile: str, owner: dict[str, Any] | None
) -> dict[str, Any]:
    """A warm scheduler pod of ``spec``'s profile (``spec`` is any cluster of it).

    ``owner``: an ownerReference to an object that ``helm uninstall`` deletes (the
    controller's ConfigMap) so unclaimed warm pods go with the release; None when
    the pod's namespace is not the owner's (owners must share the namespace).
    The claim Secret has the pod's name.
    """
    pod = build_scheduler_pod(spec)
    container = _container(pod)
    container["args"] = [
        *WARM_COMMAND,
        "--claim-address", f"$(POD_IP):{CLAIM_PORT}",
        "--health-address", f"$(POD_IP):{API_PORT}",
        "--claim-cert", f"{WARM_DIR}/{TLS_CERT_KEY}",
        "--claim-key", f"{WARM_DIR}/{TLS_KEY_KEY}",
    ]  # fmt: skip
    container["env"] = [e for e in container["env"] if e["name"] not in _CLAIM_ENV]
    container["ports"] = [
        *container["ports"],
        {"name": CLAIM_PORT_NAME, "containerPort": CLAIM_PORT, "protocol": "TCP"},
    ]
    container["volumeMounts"] = [
        {"name": WARM_VOLUME, "mountPath": WARM_DIR, "readOnly": True}
        if m["name"] == CREDENTIALS_VOLUME
        else m
        for m in container.get("volumeMounts") or []
    ]
    warm_volume = {
        "name": WARM_VOLUME,
        "secret": {
            "secretName": name,
            "items": [{"key": k, "path": k} for k in (TLS_CERT_KEY, TLS_KEY_KEY)],
            "defaultMode": 0o440,
        },
    }
    pod["spec"]["volumes"] = [
        warm_volume if v["name"] == CREDENTIALS_VOLUME else v for v in pod["spec"]["volumes"]
    ]
    pod["metadata"] = {
        "name": name,
        "namespace": spec.namespace,
        "labels": warm_labels(spec.instance, profile),
        **_owner_refs(owner),
    }
    return pod


def build_claim_mark(spec: ClusterSpec, pod: dict[str, Any], claimed_at: str) -> dict[str, Any]:
    """Merge patch recording the claim, conditional on the pod not having changed."""
    return {
        "metadata": {
            "resourceVersion": pod["metadata"]["resourceVersion"],
            "annotations": {
                ANNOTATION_CLAIMED_BY: f"{spec.name}/{spec.uid}",
                ANNOTATION_CLAIMED_AT: claimed_at,
            },
        }
    }


def build_claim_patch(spec: ClusterSpec, pod: dict[str, Any]) -> dict[str, Any]:
    """Merge patch making a claimed warm pod the cluster's scheduler pod (labels, owner)."""
    cold = build_scheduler_pod(spec)["metadata"]
    labels: dict[str, Any] = dict(cold["labels"])
    for key in pod["metadata"].get("labels") or {}:
        labels.setdefault(key, None)  # the warm-only labels go
    annotations = dict(cold.get("annotations") or {})
    return {
        "metadata": {
            "labels": labels,
            **({"annotations": annotations} if annotations else {}),
            "ownerReferences": [cluster_owner_reference(spec)],
        }
    }
