"""Worker Pods: ``generateName: dask-worker-<name>-``, one per requested worker.

A worker connects to the scheduler at the ``host:port`` the controller read
from the running scheduler pod (``spec.scheduler_address``), not by Service
DNS. Its Dask name is its pod name (downward API ``metadata.name``), so the
controller can match scheduler-side workers to pods. ``restartPolicy:
OnFailure``: a crashed worker restarts in place, while a worker the scheduler
retires exits 0 and ends Succeeded, for the controller to delete.
Workers mount only the TLS files, not the api token (they never call the api).

No nanny by default (``spec.worker_nanny``): on Kubernetes the kubelet already
restarts a crashed or OOM-killed worker container (``restartPolicy``) and the
container's memory limit is the kernel's, so a nanny per pod duplicates both
while it doubles the pod's start (a second interpreter importing distributed)
and its idle memory. What the nanny would still set before spawning its worker
(distributed's ``nanny.pre-spawn-environ`` defaults, and the fixed
``PYTHONHASHSEED`` that keeps ``hash()`` of strings equal on every worker, which
dask bag shuffles need) goes into the pod env instead, below the user's own.
``--nanny`` appended to the args (``worker_extra_container_config: {"args":
["--nanny"]}``, lists are appended, the last flag wins) brings a nanny back for
one cluster, ``KubeController.worker_nanny`` for all.
"""

from __future__ import annotations

from typing import Any

from jhub_gateway.process_env import NANNY_ENVIRONMENT

from .labels import WORKER, component_labels, worker_generate_name
from .pod import field_env, make_pod, pod_env, resources
from .scheduler import ENV_CLUSTER_NAME
from .secret import TLS_CERT_KEY, TLS_KEY_KEY
from .spec import ClusterSpec

__all__ = ["NANNY_PORT", "WORKER_DASHBOARD_PORT", "WORKER_PORT", "build_worker_pod"]

ENV_WORKER_NAME = "DASK_GATEWAY_WORKER_NAME"
# Fixed ports (pods have their own IPs) make network policies writable.
WORKER_PORT, WORKER_DASHBOARD_PORT, NANNY_PORT = 8786, 8787, 8788


def worker_args(spec: ClusterSpec) -> list[str]:
    if not spec.scheduler_address:
        raise ValueError("scheduler_address is needed to build worker pods")
    return [
        *spec.worker_cmd,
        f"tls://{spec.scheduler_address}",
        "--nanny" if spec.worker_nanny else "--no-nanny",
        "--host", "$(POD_IP)",
        "--worker-port", str(WORKER_PORT),
        "--nanny-port", str(NANNY_PORT),
        "--dashboard-address", f"$(POD_IP):{WORKER_DASHBOARD_PORT}",
        "--name", f"$({ENV_WORKER_NAME})",
        "--nthreads", str(spec.threads),
        "--memory-limit", str(spec.worker_memory_limit or spec.worker_memory),
    ]  # fmt: skip


def build_worker_pod(spec: ClusterSpec) -> dict[str, Any]:
    # An env entry of the extra container config is appended to the list: leave out our
    # default of the same name rather than send the API server a duplicate.
    extra_env = spec.worker_extra_container_config.get("env") or []
    named = {e.get("name") for e in extra_env if isinstance(e, dict)}
    defaults = {k: v for k, v in NANNY_ENVIRONMENT.items() if k not in named}
    container: dict[str, Any] = {
        "args": worker_args(spec),
        "env": pod_env(
            spec,
            {ENV_CLUSTER_NAME: spec.public_name},
            first=[field_env(ENV_WORKER_NAME, "metadata.name")],
            defaults=defaults,
        ),
        "ports": [
            {"name": "tcp-worker", "containerPort": WORKER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT, "protocol": "TCP"},
            {"name": "tcp-nanny", "containerPort": NANNY_PORT, "protocol": "TCP"},
        ],
        "resources": resources(
            spec.worker_cores,
            spec.worker_cores_limit,
            spec.worker_memory,
            spec.worker_memory_limit,
        ),
    }
    return make_pod(
        spec,
        name=worker_generate_name(spec.name),
        generate_name=True,
        labels=component_labels(spec, WORKER),
        extra_labels=spec.worker_extra_pod_labels,
        extra_annotations=spec.worker_extra_pod_annotations,
        container=container,
        secret_keys=(TLS_CERT_KEY, TLS_KEY_KEY),
        restart_policy="OnFailure",
        extra_pod_config=spec.worker_extra_pod_config,
        extra_container_config=spec.worker_extra_container_config,
    )
