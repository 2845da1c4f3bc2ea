"""The scheduler Pod ``dask-scheduler-<name>``.

The scheduler binds its comm (TLS), dashboard and gateway API to the pod IP
from the downward API, so nothing depends on cluster DNS. It heartbeats to the
api service only on change (``--gateway-heartbeat-period 0``): on Kubernetes
the controller, not heartbeats, tracks liveness. ``restartPolicy: Never``: a
crashed scheduler has lost its workers' state, so the cluster FAILS instead.
"""

from __future__ import annotations

from typing import Any

from jhub_gateway.process_env import scheduler_environment

from .labels import SCHEDULER, component_labels, scheduler_pod_name
from .pod import CREDENTIALS_DIR, make_pod, pod_env, resources
from .secret import API_TOKEN_KEY, TLS_CERT_KEY, TLS_KEY_KEY
from .spec import ClusterSpec

__all__ = [
    "API_PORT",
    "API_PORT_NAME",
    "COMM_PORT",
    "COMM_PORT_NAME",
    "DASHBOARD_PORT",
    "DASHBOARD_PORT_NAME",
    "HEALTH_PATH",
    "build_scheduler_pod",
    "number",
]

COMM_PORT, COMM_PORT_NAME = 8786, "tcp-comm"
DASHBOARD_PORT, DASHBOARD_PORT_NAME = 8787, "http-dashboard"
API_PORT, API_PORT_NAME = 8788, "http-api"
HEALTH_PATH = "/api/health"

# Read by jhub_gateway.runtime.preload (not imported: it pulls in distributed).
ENV_API_URL = "DASK_GATEWAY_API_URL"
ENV_API_TOKEN = "DASK_GATEWAY_API_TOKEN"
ENV_CLUSTER_NAME = "DASK_GATEWAY_CLUSTER_NAME"


def number(value: float) -> str:
    """A CLI number without float noise (``3``, ``0.5``)."""
    return f"{value:g}"


def scheduler_args(spec: ClusterSpec) -> list[str]:
    return [
        *spec.scheduler_cmd,
        "--protocol", "tls",
        "--host", "$(POD_IP)",
        "--port", str(COMM_PORT),
        "--dashboard-address", f"$(POD_IP):{DASHBOARD_PORT}",
        # The runtime attaches the bokeh dashboard after the first heartbeat.
        "--no-dashboard",
        "--preload", "jhub_gateway.runtime.preload",
        # Options after --preload go to the preload's own click command.
        "--gateway-api-address", f"$(POD_IP):{API_PORT}",
        "--gateway-heartbeat-period", "0",
        "--gateway-adaptive-period", number(spec.adaptive_period),
        "--gateway-idle-timeout", number(spec.idle_timeout),
    ]  # fmt: skip


def build_scheduler_pod(spec: ClusterSpec) -> dict[str, Any]:
    own = {
        ENV_API_URL: spec.api_url,
        # A path (it contains "/"): the preload reads the token from the Secret file.
        ENV_API_TOKEN: f"{CREDENTIALS_DIR}/{API_TOKEN_KEY}",
        ENV_CLUSTER_NAME: spec.public_name,
    }
    container: dict[str, Any] = {
        "args": scheduler_args(spec),
        "env": pod_env(spec, own, first=[], defaults=scheduler_environment()),
        "ports": [
            {"name": COMM_PORT_NAME, "containerPort": COMM_PORT, "protocol": "TCP"},
            {"name": DASHBOARD_PORT_NAME, "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
            {"name": API_PORT_NAME, "containerPort": API_PORT, "protocol": "TCP"},
        ],
        # Readiness is when the cluster turns Running (a client waits for it), and a
        # scheduler is up about a second after its process starts: probing every
        # second (Kubernetes' minimum) costs the client at most 1 s, not 5 as upstream's.
        "readinessProbe": {
            "httpGet": {"path": HEALTH_PATH, "port": API_PORT_NAME},
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": resources(
            spec.scheduler_cores,
            spec.scheduler_cores_limit,
            spec.scheduler_memory,
            spec.scheduler_memory_limit,
        ),
    }
    return make_pod(
        spec,
        name=scheduler_pod_name(spec.name),
        labels=component_labels(spec, SCHEDULER),
        extra_labels=spec.scheduler_extra_pod_labels,
        extra_annotations=spec.scheduler_extra_pod_annotations,
        container=container,
        secret_keys=(TLS_CERT_KEY, TLS_KEY_KEY, API_TOKEN_KEY),
        restart_policy="Never",
        extra_pod_config=spec.scheduler_extra_pod_config,
        extra_container_config=spec.scheduler_extra_container_config,
    )
