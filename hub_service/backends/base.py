"""What every backend provides to the service layer.

A backend owns the lifecycle of clusters (start, scale, stop, failure detection);
the service layer owns authorisation, options and quotas and calls these methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from traitlets import Type
from traitlets.config import LoggingConfigurable

from jhub_gateway import redact
from jhub_gateway.models import Cluster, ClusterStatus, User

from ..cluster_config import ClusterConfig

log = logging.getLogger("jhub_gateway.hub_service")


@dataclass(frozen=True)
class GatewayContext:
    """What the service tells its backend at start-up."""

    public_address: str  # HOST:PORT where Traefik serves the API, dashboards and scheduler TLS
    api_url: str  # where schedulers send heartbeats (ends in /api)
    internal_url: str  # the Tornado service itself, for the proxy to route to
    data_dir: str
    prefix: str  # URL prefix of the public API, e.g. "/services/dask-gateway/"
    dashboard_auth_url: str | None


class ClusterRegistry:
    """In-memory clusters by name, with waiters woken on every change.

    Waiters are only created for clusters that exist, so polling an unknown name
    cannot grow memory (upstream leaks one per unknown name).
    """

    def __init__(self) -> None:
        self._clusters: dict[str, Cluster] = {}
        self._changed: dict[str, asyncio.Event] = {}
        # any change at all, for live pages: a counter, and an event replaced on each change
        self.version = 0
        self._any_changed = asyncio.Event()
        #: called with (name, cluster or None once removed) on every change, where the
        #: change happens: what counts state transitions (metrics) hooks in here
        self.observers: list[Callable[[str, Cluster | None], None]] = []

    def add(self, cluster: Cluster) -> None:
        redact.register_secret(cluster.token)
        self._clusters[cluster.name] = cluster
        self.notify(cluster.name)

    def get(self, name: str) -> Cluster | None:
        return self._clusters.get(name)

    def remove(self, name: str) -> None:
        cluster = self._clusters.pop(name, None)
        if cluster is not None:
            redact.forget_secret(cluster.token)
        self.notify(name)

    def all(self) -> Iterable[Cluster]:
        return list(self._clusters.values())

    def notify(self, name: str) -> None:
        event = self._changed.pop(name, None)
        if event is not None:
            event.set()
        self.version += 1
        self._any_changed.set()
        self._any_changed = asyncio.Event()
        cluster = self._clusters.get(name)
        for observer in self.observers:
            try:
                observer(name, cluster)
            except Exception:  # an observer's fault must not stop a cluster's change
                log.exception("cluster change observer failed for %s", name)

    async def wait_for_any_change(self, since: int, timeout: float) -> int:
        """The version after ``since`` (at once if already past it), or as it is at ``timeout``."""
        if self.version == since:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._any_changed.wait(), timeout)
        return self.version

    async def wait_for_change(self, name: str, timeout: float) -> None:
        if name not in self._clusters:
            return
        event = self._changed.setdefault(name, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def select(self, username: str | None, statuses: set[ClusterStatus] | None) -> list[Cluster]:
        return [
            c
            for c in self._clusters.values()
            if (username is None or c.username == username)
            and (statuses is None or c.status in statuses)
        ]


class Backend(LoggingConfigurable):
    """Base class of cluster backends."""

    cluster_config_class = Type(
        ClusterConfig,
        klass=ClusterConfig,
        help="The ClusterConfig subclass this backend validates cluster settings with.",
        config=True,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = ClusterRegistry()
        self._configs: dict[str, ClusterConfig] = {}

    def cluster_config(self, cluster: Cluster) -> ClusterConfig:
        """The cluster's validated settings, built once (timeouts, scaling and quotas ask often)."""
        config = self._configs.get(cluster.name)
        if config is None:
            config = self._configs[cluster.name] = self.cluster_config_class(
                parent=self, **cluster.config
            )
        return config

    async def setup(self, context: GatewayContext) -> None:
        """Start background work and re-adopt clusters that survived a restart."""

    async def cleanup(self) -> None:
        """Stop background work. Running clusters are left running."""

    async def start_cluster(self, user: User, options: dict, config: ClusterConfig) -> Cluster:
        """Record and begin starting a cluster; returns it PENDING."""
        raise NotImplementedError

    async def stop_cluster(
        self, name: str, *, reason: str, message: str = "", failed: bool = False
    ) -> None:
        """Begin stopping a cluster; idempotent."""
        raise NotImplementedError

    async def on_heartbeat(self, name: str, heartbeat: dict) -> None:
        """Apply a scheduler heartbeat (addresses, requested count, worker changes)."""
        raise NotImplementedError

    async def reserve_workers(self, owner: User, cluster: Cluster, count: int) -> int:
        """How many of ``count`` workers the owner's quota allows where other processes
        (api replicas) scale the same user's clusters too; the default has no others."""
        return count

    async def request_workers(self, name: str, count: int) -> None:
        """A hint that the scheduler accepted ``count`` workers: start them early."""

    async def health(self) -> dict[str, dict]:
        """Named health checks: ``{"check": {"ok": bool, ...}}``."""
        return {}

    def get_cluster(self, name: str) -> Cluster | None:
        return self.registry.get(name)

    async def ensure_known(self, name: str) -> None:
        """Make ``get_cluster(name)`` see the cluster if it exists anywhere (backends whose
        registry can lag behind other replicas look it up); the default knows everything."""

    def list_clusters(
        self, username: str | None = None, statuses: set[ClusterStatus] | None = None
    ) -> list[Cluster]:
        return self.registry.select(username, statuses)

    async def wait_for_change(self, name: str, timeout: float) -> None:
        await self.registry.wait_for_change(name, timeout)

    async def wait_for_any_change(self, since: int, timeout: float) -> int:
        """Wait for a change to any cluster after version ``since``; returns the new version."""
        return await self.registry.wait_for_any_change(since, timeout)

    def scheduler_api_url(self, cluster: Cluster) -> str | None:
        """HTTP address of the scheduler's gateway API (for scale/adapt)."""
        return cluster.api_address or None
