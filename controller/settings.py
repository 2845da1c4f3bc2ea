"""What the reconciler needs from the controller's configuration, frozen.

:class:`~jhub_gateway.controller.app.ControllerApp` validates its traitlets and
builds one of these; the reconciler and its tests never see traitlets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .builders.labels import shared_auth_name


@dataclass(frozen=True)
class ControllerSettings:
    instance: str
    """Gateway instance (Helm release) name: which DaskClusters are ours."""
    api_url: str
    """Where schedulers send heartbeats, e.g. ``http://api-jhub-gateway.ns:8000/api``."""
    dashboard_auth_url: str
    """Traefik forward-auth target on the api service (``.../api/v1/dashboard-auth``)."""
    web_entrypoints: tuple[str, ...] = ("web",)
    tcp_entrypoints: tuple[str, ...] = ("tcp",)
    route_prefix: str = ""
    scheduler_cmd: tuple[str, ...] = ("dask", "scheduler")
    worker_cmd: tuple[str, ...] = ("dask", "worker")
    worker_nanny: bool = False
    scheduler_start_timeout: float = 60.0
    """Default when a DaskCluster's ``spec.config`` does not say (seconds)."""
    worker_start_timeout: float = 60.0
    start_timeout_cap_factor: float = 3.0
    """A cluster that is not Running this many scheduler start timeouts after its
    DaskCluster was created fails, however often its scheduler pod was replaced
    (each new pod starts a fresh timeout; queue waits in a burst count here too)."""
    route_settle_time: float = 0.3
    """Seconds a cluster's new Traefik routes exist before it is reported Running:
    Traefik applies route changes after its provider throttle (0.2 s in the chart), and a
    warm scheduler is ready sooner than that; a client connecting before would meet
    Traefik's own certificate."""
    log_tail_lines: int = 20
    """Scheduler log lines kept in ``status.message`` when a cluster fails."""
    progress_status_delay: float = 2.0
    """How long a progress-only status change (ready-worker counts while scaling,
    the resource names of a Pending cluster; see :func:`.status.must_write_now`)
    may wait to be written together with later ones, in seconds; 0 writes each
    at once. Phase changes, addresses and a finished scale are never delayed."""
    expectation_timeout: float = 60.0
    """How long a create/delete we issued may stay unseen by the informers before
    we stop waiting for it (a lost watch event must not block a cluster forever)."""

    def spec_settings(self) -> dict[str, Any]:
        """The operator-owned :class:`ClusterSpec` fields (they win over ``spec.config``)."""
        return {
            "instance": self.instance,
            "api_url": self.api_url,
            "dashboard_auth_middleware": shared_auth_name(self.instance),
            "web_entrypoints": self.web_entrypoints,
            "tcp_entrypoints": self.tcp_entrypoints,
            "route_prefix": self.route_prefix,
            "scheduler_cmd": self.scheduler_cmd,
            "worker_cmd": self.worker_cmd,
            "worker_nanny": self.worker_nanny,
        }
