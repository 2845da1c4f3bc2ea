"""Object names, labels and selectors shared by every builder.

One place decides them, so the controller's informers (which select by these
labels) and the builders cannot drift apart. Label values must be DNS-safe:
user names go through :func:`jhub_gateway.names.safe_slug`.
"""

from __future__ import annotations

from jhub_gateway.crd import (
    APP_NAME,
    LABEL_CLUSTER,
    LABEL_COMPONENT,
    LABEL_UPSTREAM_CLUSTER,
    LABEL_UPSTREAM_INSTANCE,
    LABEL_USER,
    instance_labels,
)
from jhub_gateway.names import safe_slug

from .spec import ClusterSpec

__all__ = [
    "APP_NAME",
    "SCHEDULER",
    "WORKER",
    "cluster_labels",
    "cluster_label_selector",
    "component_labels",
    "instance_label_selector",
    "instance_selector",
    "route_name",
    "scheduler_pod_name",
    "scheduler_selector",
    "secret_name",
    "selector_string",
    "service_name",
    "shared_auth_name",
    "shared_drop_credentials_name",
    "shared_strip_prefix_name",
    "strip_prefix_name",
    "worker_generate_name",
    "worker_selector",
]

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


def shared_strip_prefix_name(instance: str) -> str:
    """The one strip-prefix Middleware per namespace that every dashboard route uses."""
    return f"{instance}-dashboard-strip-prefix"


def shared_drop_credentials_name(instance: str) -> str:
    """The one Middleware per namespace that keeps the caller's credentials from schedulers."""
    return f"{instance}-dashboard-drop-credentials"


def shared_auth_name(instance: str) -> str:
    """The one forward-auth Middleware per namespace that every dashboard route uses."""
    return f"{instance}-dashboard-auth"


def instance_selector(instance: str) -> dict[str, str]:
    """Labels every object of one gateway instance carries (ours and upstream's)."""
    return instance_labels(instance)


def cluster_label_selector(instance: str, name: str) -> str:
    """Selects every object of one cluster (both components), by upstream's keys."""
    return f"{LABEL_UPSTREAM_CLUSTER}={name},{LABEL_UPSTREAM_INSTANCE}={instance}"


def instance_label_selector(instance: str) -> str:
    """The informers' filter: upstream's instance key, which every object we make carries."""
    return f"{LABEL_UPSTREAM_INSTANCE}={instance}"


def cluster_labels(spec: ClusterSpec) -> dict[str, str]:
    """Labels of every object belonging to the cluster."""
    return {
        **instance_selector(spec.instance),
        LABEL_CLUSTER: spec.name,
        LABEL_UPSTREAM_CLUSTER: spec.name,
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
