"""Direct GETs for clusters this replica's caches have not seen yet.

A cluster created through api replica A can be asked for on replica B before
B's informer delivered it; B must not answer 404 for a cluster that exists.
On a cache miss the backend asks the API server once: a GET of the
DaskCluster (and of its Secret, if the controller already made it). The GETs
are bounded, because the names come from requests: one at a time per name, a
few in all, each within ``timeout``, and a name found missing is not asked
for again for :data:`MISS_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from jhub_gateway.crd import LABEL_CLUSTER, LABEL_UPSTREAM_INSTANCE
from jhub_gateway.kube.client import DASKCLUSTERS, SECRETS, KubeClient, KubeError, NotFound
from jhub_gateway.kube.informer import Informer, Key

from .model import secret_name

__all__ = ["MISS_TTL", "DirectLookup"]

log = logging.getLogger(__name__)

MISS_TTL = 2.0
"""Seconds a name the API server did not know is answered from memory."""
CONCURRENCY = 4
"""Direct GETs in flight at once, all names together."""
_MAX_MISSES = 4096

Obj = dict[str, Any]


def _version(obj: Obj | None) -> int | None:
    try:
        return int(((obj or {}).get("metadata") or {})["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def _informer_passed(informer: Informer, obj: Obj) -> bool:
    """Whether the informer has already seen events at or after ``obj``'s version.

    If it has and still does not hold the object, the object was deleted (or
    left our selector) since: remembering it would bring back a stale copy.
    """
    seen, mine = (
        _version({"metadata": {"resourceVersion": informer.resource_version}}),
        _version(obj),
    )
    return seen is not None and mine is not None and seen >= mine


class DirectLookup:
    """Fills cache misses of the kube backend by GET, see the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        instance: str,
        clusters: Informer,
        secrets: Informer,
        *,
        cached: Callable[[Key], Obj | None],
        remember_cluster: Callable[[Obj], None],
        remember_secret: Callable[[Key, Obj], None],
        timeout: float,
    ) -> None:
        self.client = client
        self.instance = instance
        self.clusters = clusters
        self.secrets = secrets
        self._cached = cached
        self._remember_cluster = remember_cluster
        self._remember_secret = remember_secret
        self.timeout = timeout
        self.gets = 0  # API GETs issued (tests and metrics read it)
        self._locks: dict[Key, asyncio.Lock] = {}
        self._misses: dict[Key, float] = {}
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def _complete(self, key: Key, obj: Obj | None) -> bool:
        """Known, and its Secret too if the controller says it made one."""
        if obj is None:
            return False
        credentials = (obj.get("status") or {}).get("credentials")
        return not credentials or self.secrets.get(key[0], secret_name(obj)) is not None

    async def ensure(self, key: Key) -> None:
        """Make ``key`` known if it exists; never raises (a failed GET stays a cache miss)."""
        if self.timeout <= 0 or self._complete(key, self._cached(key)):
            return
        if self._misses.get(key, 0.0) > time.monotonic():
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                obj = self._cached(key)
                if self._complete(key, obj) or self._misses.get(key, 0.0) > time.monotonic():
                    return  # another request fetched it meanwhile
                try:
                    async with self._slots:
                        await asyncio.wait_for(self._fetch(key, obj), self.timeout)
                except asyncio.TimeoutError:
                    log.info("direct lookup of %s/%s timed out", *key)
                except KubeError as exc:
                    log.info("direct lookup of %s/%s failed: %s", key[0], key[1], exc)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _fetch(self, key: Key, obj: Obj | None) -> None:
        namespace, name = key
        if obj is None:
            self.gets += 1
            try:
                obj = await self.client.get(DASKCLUSTERS, name, namespace)
            except NotFound:
                self._miss(key)
                return
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(LABEL_UPSTREAM_INSTANCE) != self.instance:
                self._miss(key)  # another gateway's cluster: not ours to serve
                return
            if self._cached(key) is None and not _informer_passed(self.clusters, obj):
                self._remember_cluster(obj)
            obj = self._cached(key)
            if obj is None or self._complete(key, obj):
                return
        self.gets += 1
        try:
            secret = await self.client.get(SECRETS, secret_name(obj), namespace)
        except NotFound:
            return  # the controller has not written it yet: the informer will bring it
        labels = (secret.get("metadata") or {}).get("labels") or {}
        owned = labels.get(LABEL_CLUSTER) == name and labels.get(LABEL_UPSTREAM_INSTANCE) == (
            self.instance
        )
        if owned and not _informer_passed(self.secrets, secret):
            self._remember_secret(key, secret)

    def _miss(self, key: Key) -> None:
        now = time.monotonic()
        if len(self._misses) >= _MAX_MISSES:
            self._misses = {k: t for k, t in self._misses.items() if t > now}
        self._misses[key] = now + MISS_TTL

    def forget_miss(self, key: Key) -> None:
        """Our own create made ``key``: a remembered miss is wrong now."""
        self._misses.pop(key, None)
