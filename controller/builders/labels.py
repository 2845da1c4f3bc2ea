"""Object names, labels and selectors shared by every builder.

One place decides them, so the controller's informers (which select by these
labels) and the builders cannot drift apart. Label values must be DNS-safe:
user names go through :func:`jhub_gateway.names.safe_slug`.
"""

from __future__ import annotations

from jhub_gateway.crd import (
    LABEL_CLUSTER,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_NAME,
    LABEL_USER,
)
from jhub_gateway.names import safe_slug

from .spec import ClusterSpec

__all__ = [
    "APP_NAME",
    "SCHEDULER",
    "WORKER",
    "cluster_labels",
    "component_labels",
    "instance_selector",
    "route_name",
    "scheduler_pod_name",
    "scheduler_selector",
    "secret_name",
    "selector_string",
    "service_name",
    "strip_prefix_name",
    "worker_generate_name",
    "worker_selector",
]

APP_NAME = "jhub-gateway"
SCHEDULER = "dask-scheduler"
WORKER = "dask-worker"


def secret_name(name: str) -> str:
    return f"dask-credentials-{name}"


def scheduler_pod_name(name: str) -> str:
    return f"dask-scheduler-{name}"


def worker_generate_name(name: str) -> str:
    return f"dask-worker-{name}-"


def service_name(name: str) -> str:
    return f"dask-{name}"


def route_name(name: str) -> str:
    """Name of both the IngressRoute and the IngressRouteTCP (different kinds)."""
    return f"dask-{name}"


def strip_prefix_name(name: str) -> str:
    return f"dask-{name}-strip-prefix"


def instance_selector(instance: str) -> dict[str, str]:
    """Labels every object of one gateway instance carries (informer filter)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance}


def cluster_labels(spec: ClusterSpec) -> dict[str, str]:
    """Labels of every object belonging to the cluster."""
    return {
        **instance_selector(spec.instance),
        LABEL_CLUSTER: spec.name,
        LABEL_USER: safe_slug(spec.username),
    }


def component_labels(spec: ClusterSpec, component: str) -> dict[str, str]:
    return {**cluster_labels(spec), LABEL_COMPONENT: component}


def _selector(instance: str, name: str, component: str) -> dict[str, str]:
    return {**instance_selector(instance), LABEL_CLUSTER: name, LABEL_COMPONENT: component}


def scheduler_selector(instance: str, name: str) -> dict[str, str]:
    """Selects the scheduler pod of one cluster (the Service's selector)."""
    return _selector(instance, name, SCHEDULER)


def worker_selector(instance: str, name: str) -> dict[str, str]:
    """Selects the worker pods of one cluster (``status.selector`` for ``/scale``)."""
    return _selector(instance, name, WORKER)


def selector_string(selector: dict[str, str]) -> str:
    """``k=v,k=v`` in a stable order, as ``status.selector`` and list calls want it."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
