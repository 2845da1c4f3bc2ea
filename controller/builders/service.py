"""The scheduler Service ``dask-<name>``.

Traefik routes to its EndpointSlices (only ready, i.e. health-probed,
scheduler pods) and the api service reaches the scheduler's gateway API at
``http://dask-<name>.<ns>:8788``. Ports target the scheduler container's
*named* ports, so a port change stays in one place. The Service carries the
scheduler component label, which its EndpointSlices inherit, so the
controller can watch them with one selector.
"""

from __future__ import annotations

from typing import Any

from .labels import SCHEDULER, component_labels, scheduler_selector, service_name
from .ownership import object_meta
from .scheduler import (
    API_PORT,
    API_PORT_NAME,
    COMM_PORT,
    COMM_PORT_NAME,
    DASHBOARD_PORT,
    DASHBOARD_PORT_NAME,
)
from .spec import ClusterSpec

__all__ = ["build_service"]


def _port(name: str, number: int) -> dict[str, Any]:
    return {"name": name, "port": number, "targetPort": name, "protocol": "TCP"}


def build_service(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(spec, service_name(spec.name), component_labels(spec, SCHEDULER)),
        "spec": {
            "type": "ClusterIP",
            "selector": scheduler_selector(spec.instance, spec.name),
            "ports": [
                _port(COMM_PORT_NAME, COMM_PORT),
                _port(DASHBOARD_PORT_NAME, DASHBOARD_PORT),
                _port(API_PORT_NAME, API_PORT),
            ],
        },
    }
