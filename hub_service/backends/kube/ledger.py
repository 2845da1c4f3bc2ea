"""Per-user quota reservations that hold across api replicas.

Each replica's informer cache lags the API server a little, so two replicas
receiving creates for one user at the same moment could both see room for one
more cluster. Instead, a create first *reserves* its footprint in a per-user
ConfigMap, written with optimistic concurrency (``resourceVersion``
precondition): of two concurrent writers exactly one succeeds, the other gets a
409, re-reads the ledger (now holding the winner's reservation) and checks
again. Only then is the DaskCluster created.

Entries are never trusted blindly: an entry whose DaskCluster the cache shows
stopped is dropped, and one whose DaskCluster is not in the cache at all is
dropped only after ``grace`` seconds (by then any cluster created under it
would have reached every cache; a create that failed never will). Active
clusters of the user that have no entry (quotas switched on later) are counted
and added. Usage of clusters the cache knows includes their workers.

Scaling reserves the same way (:meth:`QuotaLedger.reserve_workers`): the new
worker count of a cluster is written to its entry, under the same
resourceVersion precondition, before ``spec.replicas`` is patched, so two
replicas scaling two clusters of one user at once cannot both spend the same
room. For ``grace`` seconds after such a write an entry counts its workers even
where a replica's cache still shows fewer (or, after a scale-down, more: the
larger of the two counts); after that the cache alone decides.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from jhub_gateway.crd import LABEL_USER, instance_labels
from jhub_gateway.kube.client import CONFIGMAPS, AlreadyExists, Conflict, KubeClient, NotFound
from jhub_gateway.models import Cluster, User
from jhub_gateway.names import safe_slug

from ...cluster_config import ClusterConfig
from ...errors import QuotaExceeded, ServiceUnavailable
from ...quotas import Footprint, Limits, Usage, workers_allowed

log = logging.getLogger("jhub_gateway.hub_service")

DATA_KEY = "reservations"
MAX_ATTEMPTS = 8


def ledger_name(instance: str, username: str) -> str:
    return "jhub-gateway-quota-" + safe_slug(f"{instance}-{username}", 44)


class QuotaLedger:
    """``await ledger.reserve(...)`` before creating a cluster; raises ``QuotaExceeded``."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        instance: str,
        lookup: Callable[[str], Cluster | None],
        active_of: Callable[[str], list[Cluster]],
        config_of: Callable[[Cluster], ClusterConfig],
        grace: float = 60.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.instance = instance
        self.lookup = lookup
        self.active_of = active_of
        self.config_of = config_of
        self.grace = grace

    async def reserve(
        self, user: User, limits: Limits, name: str, cores: float, memory: int
    ) -> None:
        for _ in range(MAX_ATTEMPTS):
            current = await self._read(user)
            entries = self._live_entries(user, _entries(current))
            self._check(limits, entries, cores, memory)
            entries[name] = {"cores": cores, "memory": memory, "workers": 0, "time": time.time()}
            try:
                await self._write(user, current, entries)
                return
            except (Conflict, AlreadyExists):
                continue  # another replica reserved first: re-read and check again
        raise ServiceUnavailable(
            "too many concurrent cluster requests for this user; try again", retry_after=1
        )

    async def reserve_workers(
        self, user: User, limits: Limits, cluster: Cluster, workers: int
    ) -> int:
        """Reserve up to ``workers`` workers for ``cluster``; returns how many the quota allows."""
        config = self.config_of(cluster)
        for _ in range(MAX_ATTEMPTS):
            current = await self._read(user)
            entries = self._live_entries(user, _entries(current))
            mine = entries.pop(cluster.name, None)
            others = Usage(
                clusters=len(entries),
                workers=sum(int(e.get("workers", 0)) for e in entries.values()),
                cores=sum(float(e.get("cores", 0)) for e in entries.values()),
                memory=sum(int(e.get("memory", 0)) for e in entries.values()),
            )
            allowed = workers_allowed(limits, others, Footprint.of(config, 0), workers)
            if mine is not None and int(mine.get("workers", -1)) == allowed:
                return allowed  # already what every replica counts: nothing to write
            now = time.time()
            since = float(mine.get("time", now)) if mine else now
            entries[cluster.name] = {**_footprint(config, allowed, since), "scaled": now}
            try:
                await self._write(user, current, entries)
                return allowed
            except (Conflict, AlreadyExists):
                continue
        raise ServiceUnavailable(
            "too many concurrent scale requests for this user; try again", retry_after=1
        )

    async def release(self, user: User, name: str) -> None:
        """Drop a reservation whose create failed (best effort: it expires anyway)."""
        for _ in range(3):
            current = await self._read(user)
            entries = _entries(current)
            if current is None or name not in entries:
                return
            del entries[name]
            try:
                await self._write(user, current, entries)
                return
            except (Conflict, AlreadyExists):
                continue

    # -- internals --------------------------------------------------------------

    async def _read(self, user: User) -> dict[str, Any] | None:
        try:
            return await self.client.get(
                CONFIGMAPS, ledger_name(self.instance, user.name), self.namespace
            )
        except NotFound:
            return None

    async def _write(
        self, user: User, current: dict[str, Any] | None, entries: dict[str, dict]
    ) -> None:
        data = {DATA_KEY: json.dumps(entries, sort_keys=True)}
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ledger_name(self.instance, user.name),
                    "namespace": self.namespace,
                    "labels": {**instance_labels(self.instance), LABEL_USER: safe_slug(user.name)},
                },
                "data": data,
            }
            await self.client.create(CONFIGMAPS, body, self.namespace)
        else:
            body = {**current, "data": data}  # keeps metadata.resourceVersion: a CAS
            await self.client.replace(CONFIGMAPS, current["metadata"]["name"], body, self.namespace)

    def _live_entries(self, user: User, entries: dict[str, dict]) -> dict[str, dict]:
        now = time.time()
        live: dict[str, dict] = {}
        for name, entry in entries.items():
            cluster = self.lookup(name)
            if cluster is None:
                if now - float(entry.get("time", 0)) < self.grace:
                    live[name] = entry  # created moments ago, maybe not in our cache yet
            elif cluster.status.is_active:
                workers = cluster.target_workers
                scaled = float(entry.get("scaled", 0))
                if now - scaled < self.grace:
                    # a scale admitted moments ago, maybe not in this cache yet
                    workers = max(workers, int(entry.get("workers", 0)))
                live[name] = _footprint(self.config_of(cluster), workers, entry.get("time", now))
                if now - scaled < self.grace:
                    live[name]["scaled"] = scaled
        for cluster in self.active_of(user.name):
            live.setdefault(
                cluster.name,
                _footprint(
                    self.config_of(cluster), cluster.target_workers, cluster.start_time / 1000
                ),
            )
        return live

    @staticmethod
    def _check(limits: Limits, entries: dict[str, dict], cores: float, memory: int) -> None:
        if limits.clusters is not None and len(entries) >= limits.clusters:
            raise QuotaExceeded(
                f"you already have {len(entries)} active cluster(s), the most allowed is "
                f"{limits.clusters}; stop one first"
            )
        used_cores = sum(float(e.get("cores", 0)) for e in entries.values())
        used_memory = sum(int(e.get("memory", 0)) for e in entries.values())
        if (limits.cores is not None and used_cores + cores > limits.cores) or (
            limits.memory is not None and used_memory + memory > limits.memory
        ):
            raise QuotaExceeded("starting another scheduler would exceed your core or memory quota")


def _footprint(config: ClusterConfig, workers: int, when: float) -> dict[str, Any]:
    footprint = Footprint.of(config, workers)
    return {
        "cores": footprint.cores,
        "memory": footprint.memory,
        "workers": workers,
        "time": when,
    }


def _entries(configmap: dict[str, Any] | None) -> dict[str, dict]:
    raw = ((configmap or {}).get("data") or {}).get(DATA_KEY, "{}")
    try:
        entries = json.loads(raw)
    except ValueError:
        log.warning("quota ledger %s is corrupt; rebuilding it from the cache", _name(configmap))
        return {}
    return (
        {k: v for k, v in entries.items() if isinstance(v, dict)}
        if isinstance(entries, dict)
        else {}
    )


def _name(configmap: dict[str, Any] | None) -> str:
    return str(((configmap or {}).get("metadata") or {}).get("name", "?"))
