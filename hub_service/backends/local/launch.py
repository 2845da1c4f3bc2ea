"""Commands and environments of local scheduler and worker processes (pure functions)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from jhub_gateway.process_env import NANNY_ENVIRONMENT, scheduler_environment

from ...cluster_config import ClusterConfig, parse_memory

#: variables a cluster process inherits from the service; everything else is dropped
INHERITED = (
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "LANG",
    "LC_ALL",
    "HOME",
    "USER",
    "TMPDIR",
    "SYSTEMROOT",
)


def base_env(
    config: ClusterConfig, tls_env: Mapping[str, str], parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    parent = os.environ if parent is None else parent
    env = {k: parent[k] for k in INHERITED if k in parent}
    # find `dask` (and `python`) of the service's own environment first, even when the
    # service was started by absolute path without its venv on PATH
    env["PATH"] = os.pathsep.join(
        p for p in (os.path.dirname(sys.executable), env.get("PATH", "")) if p
    )
    env.update(scheduler_environment())  # workers ignore it
    env.update(config.environment)
    env.update(tls_env)
    # keep cluster processes quiet and predictable
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def pooled_command(role: str) -> list[str]:
    """A pooled interpreter that becomes ``dask scheduler <scheduler_args>`` (or ``dask
    worker <worker_args>``) when claimed."""
    return [sys.executable, "-m", f"jhub_gateway.runtime.pooled_{role}"]


def scheduler_args(config: ClusterConfig, host: str, heartbeat_period: float) -> list[str]:
    return [
        "--protocol",
        "tls",
        "--host",
        host,
        "--port",
        "0",
        "--dashboard-address",
        f"{host}:0",
        # the HTTP server still listens; the runtime attaches the bokeh dashboard to
        # it after the first heartbeat, off the start path (jhub_gateway.runtime.dashboard)
        "--no-dashboard",
        "--preload",
        "jhub_gateway.runtime.preload",
        "--gateway-api-address",
        f"{host}:0",
        "--gateway-heartbeat-period",
        str(heartbeat_period),
        "--gateway-adaptive-period",
        str(config.adaptive_period),
        "--gateway-idle-timeout",
        str(config.idle_timeout),
    ]


def scheduler_env(
    base: Mapping[str, str], api_url: str, cluster_name: str, token_path: Path
) -> dict[str, str]:
    """``cluster_name`` "" for a pooled process: its claim names the cluster."""
    env = dict(base)
    env["DASK_GATEWAY_API_URL"] = api_url
    if cluster_name:
        env["DASK_GATEWAY_CLUSTER_NAME"] = cluster_name
    env["DASK_GATEWAY_API_TOKEN"] = str(
        token_path
    )  # a path: the token itself stays out of the environment
    return env


def worker_env(config: ClusterConfig, base: Mapping[str, str], nanny: bool) -> dict[str, str]:
    """A worker's environment: without a nanny, what the nanny would have set (below
    the cluster's own ``environment``)."""
    env = dict(base)
    if not nanny:
        for key, value in NANNY_ENVIRONMENT.items():
            if key not in config.environment:
                env[key] = value
    return env


def worker_args(
    config: ClusterConfig, scheduler_address: str, worker_name: str, host: str, nanny: bool
) -> list[str]:
    return [
        scheduler_address,
        "--name",
        worker_name,
        "--nthreads",
        str(config.threads),
        "--memory-limit",
        str(parse_memory(config.worker_memory)),
        "--host",
        host,
        "--no-dashboard",
        "--nanny" if nanny else "--no-nanny",
    ]
