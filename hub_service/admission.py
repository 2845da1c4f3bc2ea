"""Quota admission: the only place that decides how much a user may hold.

Decisions take the owner's lock only for arithmetic: no network I/O happens
while it is held, so a hung scheduler or a slow proxy cannot stall the owner's
other requests. A scale-up that has been admitted but not yet applied by the
backend is counted as a *reservation*, so concurrent requests cannot all pass
the same check while the first one is still talking to its scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from jhub_gateway.models import Cluster, ClusterStatus, User

from .cluster_config import ClusterConfig
from .errors import QuotaExceeded
from .quotas import Footprint, Limits, Usage, UserQuotas, usage_of, workers_allowed

ACTIVE = {ClusterStatus.PENDING, ClusterStatus.RUNNING}
ClusterLister = Callable[[str], list[Cluster]]
ConfigOf = Callable[[Cluster], ClusterConfig]


class Admission:
    def __init__(self, quotas: UserQuotas, active_clusters: ClusterLister, config_of: ConfigOf):
        self.quotas = quotas
        self._active_clusters = active_clusters
        self._config_of = config_of
        self._user_locks: dict[str, asyncio.Lock] = {}
        self._reserved: dict[str, int] = {}  # cluster name -> workers admitted, not yet applied
        self._pending_clusters: dict[str, int] = {}  # username -> creates admitted, not yet listed

    def _lock(self, username: str) -> asyncio.Lock:
        lock = self._user_locks.get(username)
        if lock is None:
            lock = self._user_locks[username] = asyncio.Lock()
        return lock

    def usage(self, user: User, exclude: str | None = None) -> tuple[Limits, Usage]:
        """The user's limits and what their active clusters hold (reservations included)."""
        footprints = [
            Footprint.of(self._config_of(c), max(c.target_workers, self._reserved.get(c.name, 0)))
            for c in self._active_clusters(user.name)
            if c.name != exclude
        ]
        usage = usage_of(footprints)
        pending = self._pending_clusters.get(user.name, 0)
        if pending:
            usage = Usage(usage.clusters + pending, usage.workers, usage.cores, usage.memory)
        return self.quotas.limits_for(user), usage

    @contextlib.asynccontextmanager
    async def admit_cluster(self, user: User, config: ClusterConfig) -> AsyncIterator[None]:
        """Hold a place for one new cluster while the backend creates it."""
        async with self._lock(user.name):
            limits, usage = self.usage(user)
            if limits.clusters is not None and usage.clusters >= limits.clusters:
                raise QuotaExceeded(
                    f"you already have {usage.clusters} active cluster(s), the most allowed is "
                    f"{limits.clusters}; stop one first"
                )
            if _over(limits, usage, Footprint.of(config, 0)):
                raise QuotaExceeded(
                    "starting another scheduler would exceed your core or memory quota"
                )
            self._pending_clusters[user.name] = self._pending_clusters.get(user.name, 0) + 1
        try:
            yield
        finally:
            left = self._pending_clusters[user.name] - 1
            if left:
                self._pending_clusters[user.name] = left
            else:
                del self._pending_clusters[user.name]

    async def clamp(self, owner: User, cluster: Cluster, wanted: int) -> tuple[int, str | None]:
        """``wanted`` bound by the cluster's own limit and the owner's quota (no reservation)."""
        async with self._lock(owner.name):
            return self._clamp(owner, cluster, wanted)

    @contextlib.asynccontextmanager
    async def reserve_workers(
        self, owner: User, cluster: Cluster, wanted: int
    ) -> AsyncIterator[tuple[int, str | None]]:
        """Admit up to ``wanted`` workers and count them until the block ends."""
        async with self._lock(owner.name):
            count, msg = self._clamp(owner, cluster, wanted)
            previous = self._reserved.get(cluster.name)
            self._reserved[cluster.name] = max(count, previous or 0)
        try:
            yield count, msg
        finally:
            if previous is None:
                self._reserved.pop(cluster.name, None)
            else:
                self._reserved[cluster.name] = previous

    def _clamp(self, owner: User, cluster: Cluster, wanted: int) -> tuple[int, str | None]:
        config = self._config_of(cluster)
        max_workers = config.max_workers()
        count, msg = wanted, None
        if max_workers is not None and count > max_workers:
            msg = (
                f"Scale request of {count} workers would exceed this cluster's limit, "
                f"scaled to {max_workers} instead"
            )
            count = max_workers
        limits, others = self.usage(owner, exclude=cluster.name)
        allowed = workers_allowed(limits, others, Footprint.of(config, 0), count)
        if allowed < count:
            msg = (
                f"Scale request of {count} workers would exceed your quota, "
                f"scaled to {allowed} instead"
            )
            count = allowed
        return count, msg


def _over(limits: Limits, usage: Usage, footprint: Footprint) -> bool:
    return (limits.cores is not None and usage.cores + footprint.cores > limits.cores) or (
        limits.memory is not None and usage.memory + footprint.memory > limits.memory
    )
