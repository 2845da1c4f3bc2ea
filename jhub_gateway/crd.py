"""The ``DaskCluster`` custom resource: names, labels and the CRD manifest.

The api service writes desired state (``spec``) and the controller writes
``status``; this module is the contract both sides share, so it lives in core
and imports no Kubernetes client. ``helm/jhub-gateway/crds/daskclusters.yaml``
is generated from :func:`crd_manifest` (``python -m jhub_gateway.crd``) and a
test keeps the two equal.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from .cluster_fields import FIELDS
from .names import is_valid_cluster_name

__all__ = [
    "API_VERSION",
    "APP_NAME",
    "CONFIG_FIELDS",
    "KUBE_CONFIG_FIELDS",
    "GROUP",
    "KIND",
    "LABEL_CLUSTER",
    "LABEL_COMPONENT",
    "LABEL_INSTANCE",
    "LABEL_NAME",
    "LABEL_UPSTREAM_CLUSTER",
    "LABEL_UPSTREAM_INSTANCE",
    "LABEL_USER",
    "PHASES",
    "PLURAL",
    "SHORT_NAME",
    "SINGULAR",
    "VERSION",
    "cluster_object",
    "crd_manifest",
    "crd_yaml",
    "instance_labels",
    "metadata_key_problem",
    "label_value_problem",
    "parse_public_name",
    "public_name",
]

GROUP = "jhubgateway.dask.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DaskCluster"
PLURAL = "daskclusters"
SINGULAR = "daskcluster"
SHORT_NAME = "dgc"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"  # "dask-scheduler" | "dask-worker"
LABEL_CLUSTER = f"{GROUP}/cluster"
LABEL_USER = f"{GROUP}/user"  # safe_slug(username): user names need not be label values
# Upstream dask-gateway's label keys and values, carried too so operators' NetworkPolicies,
# dashboards and scripts written for upstream keep selecting our objects.
APP_NAME = "dask-gateway"
LABEL_UPSTREAM_INSTANCE = "gateway.dask.org/instance"
LABEL_UPSTREAM_CLUSTER = "gateway.dask.org/cluster"

PHASES = ("Pending", "Running", "Stopping", "Stopped", "Failed")

# Settings only the Kubernetes backend has (``KubeClusterConfig`` traits), by
# ``spec.config`` key; the shared settings come from the one table in cluster_fields.
KUBE_CONFIG_FIELDS: dict[str, str] = {
    "image": "image",
    "imagePullPolicy": "image_pull_policy",
    "imagePullSecrets": "image_pull_secrets",
    "schedulerCoresLimit": "scheduler_cores_limit",
    "schedulerMemoryLimit": "scheduler_memory_limit",
    "workerCoresLimit": "worker_cores_limit",
    "workerMemoryLimit": "worker_memory_limit",
    "schedulerExtraPodConfig": "scheduler_extra_pod_config",
    "schedulerExtraContainerConfig": "scheduler_extra_container_config",
    "workerExtraPodConfig": "worker_extra_pod_config",
    "workerExtraContainerConfig": "worker_extra_container_config",
    "schedulerExtraPodLabels": "scheduler_extra_pod_labels",
    "schedulerExtraPodAnnotations": "scheduler_extra_pod_annotations",
    "workerExtraPodLabels": "worker_extra_pod_labels",
    "workerExtraPodAnnotations": "worker_extra_pod_annotations",
}

# ``spec.config`` key (camelCase, as stored) -> ClusterSpec / ClusterConfig attribute.
CONFIG_FIELDS: dict[str, str] = {
    **{f.key: f.name for f in FIELDS if f.key is not None},
    **KUBE_CONFIG_FIELDS,
}


def instance_labels(instance: str) -> dict[str, str]:
    """Labels that put an object under one gateway instance (Helm release).

    The service puts them on every DaskCluster it creates; the controller of
    that instance watches DaskClusters by ``gateway.dask.org/instance`` (as
    upstream's does) and ignores all others.
    """
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance, LABEL_UPSTREAM_INSTANCE: instance}


_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"


def metadata_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label or annotation key (``[prefix/]name``), else None.

    The API server refuses such pods; checking first turns that into a 422 at the
    service and an ``InvalidSpec`` condition at the controller instead of a retry loop.
    """
    prefix, slash, name = key.rpartition("/")
    if slash and not _DNS_SUBDOMAIN.match(prefix):
        return f"{key!r}: the prefix must be a DNS subdomain"
    if not _NAME_PART.match(name):
        return f"{key!r}: the name must be 1-63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value (annotations take any string), else None."""
    if not re.match(LABEL_VALUE_PATTERN, value):
        return (
            f"{value!r}: a label value is at most 63 letters, digits, '-', '_' or '.', "
            "alphanumeric at both ends"
        )
    return None


def public_name(namespace: str, name: str) -> str:
    """The name users see (``<namespace>.<name>``), as upstream's Kubernetes backend."""
    return f"{namespace}.{name}"


def parse_public_name(value: str) -> tuple[str, str]:
    """``"<ns>.<name>"`` -> ``(ns, name)``; ValueError for anything else."""
    namespace, dot, name = value.partition(".")
    if not dot or not is_valid_cluster_name(value):
        raise ValueError(f"not a '<namespace>.<name>' cluster name: {value!r}")
    return namespace, name


def cluster_object(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A ``DaskCluster`` body ready to create (labels are the caller's to add)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": copy.deepcopy(spec),
    }


# -- schema helpers: keep the manifest below readable ---------------------------------


def _s(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **extra}


def _obj(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties, **extra}


def _free(description: str) -> dict[str, Any]:
    """An object whose content the schema does not constrain (kept as written)."""
    return {
        "type": "object",
        "description": description,
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _strings(description: str, **value: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string", **value},
    }


def _labels(description: str) -> dict[str, Any]:
    # Values are checked here; keys need the controller's check (no schema for map keys).
    return _strings(description, maxLength=63, pattern=LABEL_VALUE_PATTERN)


def _cores(what: str) -> dict[str, Any]:
    return _s("number", what, minimum=0)


def _bytes(what: str) -> dict[str, Any]:
    return _s("integer", what, format="int64", minimum=0)


def _seconds(what: str) -> dict[str, Any]:
    return _s("number", what, minimum=0)


def _command(what: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": what,
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
    }


def _config_schema() -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": _s("string", "Container image of schedulers and workers.", minLength=1),
        "imagePullPolicy": _s(
            "string", "Image pull policy.", enum=["Always", "IfNotPresent", "Never"]
        ),
        "imagePullSecrets": {
            "type": "array",
            "description": "Secrets for pulling the image.",
            "items": _obj(
                "A Secret reference.", {"name": _s("string", "Secret name.")}, required=["name"]
            ),
        },
        "environment": {
            "type": "object",
            "description": "Extra environment variables for schedulers and workers.",
            "additionalProperties": {"type": "string"},
        },
        "schedulerCmd": _command("Command that starts the scheduler; absent = the controller's."),
        "workerCmd": _command("Command that starts each worker; absent = the controller's."),
        "schedulerCores": _cores("CPU cores requested by the scheduler."),
        "schedulerCoresLimit": _cores("CPU limit of the scheduler; 0 = the request."),
        "schedulerMemory": _bytes("Memory requested by the scheduler, bytes."),
        "schedulerMemoryLimit": _bytes("Memory limit of the scheduler, bytes; 0 = the request."),
        "workerCores": _cores("CPU cores requested by each worker."),
        "workerCoresLimit": _cores("CPU limit of each worker; 0 = the request."),
        "workerMemory": _bytes("Memory requested by each worker, bytes."),
        "workerMemoryLimit": _bytes("Memory limit of each worker, bytes; 0 = the request."),
        "workerThreads": _s(
            "integer", "Threads per worker; 0 = one per core (at least 1).", minimum=0
        ),
        "idleTimeout": _seconds("Stop after this many idle seconds; 0 = never."),
        "maxLifetime": _seconds("Stop this many seconds after start; 0 = no limit."),
        "keepAfterServerStops": _s(
            "boolean", "Keep running after the owner's notebook server stops (not owned by it)."
        ),
        "schedulerStartTimeout": _seconds("Seconds the scheduler may take to become ready."),
        "workerStartTimeout": _seconds("Seconds a worker may take to start."),
        "adaptivePeriod": _s(
            "number",
            "Seconds between adaptive scaling decisions.",
            exclusiveMinimum=True,
            minimum=0,
        ),
        "schedulerExtraPodConfig": _free("Deep-merged into the scheduler PodSpec."),
        "schedulerExtraContainerConfig": _free("Deep-merged into the scheduler container."),
        "workerExtraPodConfig": _free("Deep-merged into each worker PodSpec."),
        "workerExtraContainerConfig": _free("Deep-merged into each worker container."),
        "schedulerExtraPodLabels": _labels(
            "Extra labels of the scheduler pod (the gateway's own labels win on conflicts)."
        ),
        "schedulerExtraPodAnnotations": _strings("Extra annotations of the scheduler pod."),
        "workerExtraPodLabels": _labels(
            "Extra labels of each worker pod (the gateway's own labels win on conflicts)."
        ),
        "workerExtraPodAnnotations": _strings("Extra annotations of each worker pod."),
        # Limits the service enforces on scale requests; kept here so every replica sees them.
        "clusterMaxWorkers": _s("integer", "Most workers of this cluster.", minimum=0),
        "clusterMaxCores": _cores("Most cores of this cluster, scheduler included."),
        "clusterMaxMemory": _bytes("Most memory of this cluster in bytes, scheduler included."),
    }
    return _obj("Resources and policies the service resolved for this cluster.", props)


def _spec_schema() -> dict[str, Any]:
    return _obj(
        "Desired state, written by the gateway service.",
        {
            "username": _s("string", "Owner (JupyterHub user name).", minLength=1),
            "active": _s("boolean", "False asks the controller to stop the cluster.", default=True),
            "replicas": _s(
                "integer", "Desired number of workers.", format="int32", minimum=0, default=0
            ),
            "options": _free("User options as validated by the service."),
            "config": _config_schema(),
        },
        required=["username"],
    )


def _conditions_schema() -> dict[str, Any]:
    condition = _obj(
        "One aspect of the cluster's state (Ready, Progressing, Failed).",
        {
            "type": _s("string", "Condition type.", minLength=1),
            "status": _s("string", "True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _s("string", "CamelCase reason for the last transition."),
            "message": _s("string", "Human-readable details."),
            "lastTransitionTime": _s("string", "When status last changed.", format="date-time"),
        },
        required=["type", "status"],
    )
    return {
        "type": "array",
        "description": "Conditions, one per type.",
        "items": condition,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }


def _status_schema() -> dict[str, Any]:
    return _obj(
        "Observed state, written by the controller only.",
        {
            "phase": _s("string", "Lifecycle phase.", enum=list(PHASES)),
            "reason": _s("string", "CamelCase reason for the current phase."),
            "message": _s("string", "Human-readable details about the phase."),
            "conditions": _conditions_schema(),
            "observedGeneration": _s(
                "integer", "metadata.generation the status reflects.", format="int64"
            ),
            "replicas": _s("integer", "Ready workers.", format="int32", minimum=0),
            "selector": _s("string", "Label selector of the worker pods (scale subresource)."),
            "schedulerAddress": _s("string", "tls://host:port of the scheduler."),
            "dashboardAddress": _s("string", "http://host:port of the dashboard."),
            "apiAddress": _s("string", "http://host:port of the scheduler's gateway API."),
            "credentials": _s("string", "Name of the Secret with TLS credentials and token."),
            "schedulerPod": _s("string", "Name of the scheduler Pod."),
            "service": _s("string", "Name of the scheduler Service."),
            "startTime": _s("string", "When the cluster was first seen.", format="date-time"),
            "completionTime": _s("string", "When it stopped or failed.", format="date-time"),
        },
    )


def _printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "User", "type": "string", "jsonPath": ".spec.username"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Workers", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd_manifest() -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition (a fresh dict each call)."""
    schema = _obj(
        "A Dask cluster (scheduler and workers) owned by one hub user.",
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _spec_schema(),
            "status": _status_schema(),
        },
        required=["spec"],
    )
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        "additionalPrinterColumns": _printer_columns(),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
            },
            "versions": [version],
        },
    }


_HEADER = "# Generated by `python -m jhub_gateway.crd` from jhub_gateway/crd.py; do not edit.\n"


def crd_yaml() -> str:
    """The manifest as the chart ships it (``helm/jhub-gateway/crds/daskclusters.yaml``)."""
    return _HEADER + yaml.safe_dump(crd_manifest(), sort_keys=False, width=100)


if __name__ == "__main__":
    print(crd_yaml(), end="")
