"""The controller's moving parts: informers -> work queue -> reconcile workers.

Informers run on every replica, leader or not, so a standby that takes over
has warm caches and starts reconciling at once. Only the leader (Lease
election, :mod:`.leader`) reconciles and cleans up; each leadership term gets
a fresh :class:`Reconciler` (expectations and written-status memory belong to
one term) and begins by queueing every known cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jhub_gateway.crd import KIND
from jhub_gateway.kube.client import (
    DASKCLUSTERS,
    INGRESSROUTES,
    INGRESSROUTETCPS,
    MIDDLEWARES,
    PODS,
    SECRETS,
    SERVICES,
    Conflict,
    KubeClient,
    KubeError,
    NotFound,
    Resource,
    Unavailable,
)
from jhub_gateway.kube.informer import Informer

from . import podstate
from .builders.labels import instance_label_selector
from .cache import (
    INGRESSROUTE,
    INGRESSROUTETCP,
    MIDDLEWARE,
    POD,
    SECRET,
    SERVICE,
    ClusterCache,
    Key,
    is_warm,
)
from .expectations import Expectations
from .leader import LeaderElector
from .metrics import ControllerMetrics
from .reconcile import Reconciler
from .settings import ControllerSettings
from .status import FINAL
from .warmpool import WarmPool, WarmSettings
from .workqueue import QueueClosed, WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONFLICT_DELAY = 0.2
KINDS: tuple[tuple[str, Resource], ...] = (
    (KIND, DASKCLUSTERS),
    (POD, PODS),
    (SECRET, SECRETS),
    (SERVICE, SERVICES),
    (INGRESSROUTE, INGRESSROUTES),
    (INGRESSROUTETCP, INGRESSROUTETCPS),
    (MIDDLEWARE, MIDDLEWARES),
)


@dataclass(frozen=True)
class RunSettings:
    namespaces: tuple[str, ...] = ()
    """Watched namespaces; empty = all (needs cluster-wide RBAC)."""
    workers: int = 4
    backoff_base: float = 0.1
    backoff_max: float = 300.0
    completed_max_age: float = 86400.0
    cleanup_period: float = 600.0
    watch_timeout: int = 300
    warm: WarmSettings = WarmSettings(size=0)
    """The warm scheduler pool (size 0: none)."""


def requeue_after_error(queue: WorkQueue[Key], key: Key, exc: BaseException) -> float:
    """Queue ``key`` again after a failed reconcile; returns the delay chosen.

    A 409 means our view was stale: look again shortly (the informer will have
    the newer object). A 429 or 5xx with ``Retry-After`` waits that long. Any
    other failure (5xx, timeouts, refused connections, bugs) backs off
    exponentially per key, so one broken cluster never starves the others.
    """
    if isinstance(exc, Conflict):
        queue.put_after(key, CONFLICT_DELAY)
        return CONFLICT_DELAY
    if isinstance(exc, Unavailable) and exc.retry_after:
        queue.put_after(key, exc.retry_after)
        return exc.retry_after
    return queue.put_backoff(key)


class Controller:
    def __init__(
        self,
        client: KubeClient,
        settings: ControllerSettings,
        run: RunSettings,
        *,
        elector: LeaderElector | None = None,
        clock: Callable[[], float] | None = None,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics if metrics is not None else ControllerMetrics()
        self.settings = settings
        self.run_settings = run
        self.elector = elector
        self._clock = clock
        self.cache = ClusterCache()
        self.expectations = Expectations(settings.expectation_timeout)
        self.informers: list[Informer] = []
        self.queue: WorkQueue[Key] | None = None
        self.reconciler: Reconciler | None = None
        self.warm_pool: WarmPool | None = None
        self.reconciles = 0
        self._stopping = asyncio.Event()
        selector = instance_label_selector(settings.instance)
        for namespace in run.namespaces or (None,):
            for kind, resource in KINDS:
                informer = Informer(
                    client, resource, namespace, selector, watch_timeout=run.watch_timeout
                )
                informer.add_handler(self._handler(kind))
                self.informers.append(informer)

    # -- events -> keys ------------------------------------------------------------

    def _handler(self, kind: str) -> Callable[[str, Obj], None]:
        def on_event(etype: str, obj: Obj) -> None:
            key = self.cache.apply(kind, etype, obj)
            self.expectations.observe(kind, etype, obj)
            if self.queue is None:
                return
            if self.warm_pool is not None and (kind == KIND or is_warm(obj)):
                self.warm_pool.wake()  # a new profile may be in use, or a warm pod changed
            if key is not None:
                self.queue.put(key)
            elif kind == MIDDLEWARE:
                # A shared Middleware changed or vanished: any cluster of the namespace repairs it.
                ns = str((obj.get("metadata") or {}).get("namespace") or "")
                first = next((k for k in self.cache.clusters if k[0] == ns), None)
                if first is not None:
                    self.queue.put(first)

        return on_event

    # -- health ----------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return all(i.has_synced for i in self.informers)

    @property
    def healthy(self) -> bool:
        """Informers running (they retry API failures themselves, with backoff)."""
        return not self._stopping.is_set() and all(i.running for i in self.informers)

    @property
    def leading(self) -> bool:
        return self.queue is not None

    # -- run ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        if self.elector is not None:
            self.elector.stop()
        if self.queue is not None:
            self.queue.close()

    async def run(self) -> None:
        """Sync informers, then lead (or wait to) until ``stop()``."""
        for informer in self.informers:
            informer.start()
        try:
            await asyncio.gather(*(i.synced() for i in self.informers))
            log.info("informers synced: %d clusters, %d pods", len(self.cache.clusters),
                     sum(len(self.cache.children(POD, k)) for k in self.cache.clusters))  # fmt: skip
            while not self._stopping.is_set():
                if self.elector is None:
                    await self._lead()
                else:
                    await self.elector.run(self._lead)
        finally:
            await asyncio.gather(*(i.stop() for i in self.informers))

    async def _lead(self) -> None:
        clock = self._clock or time.time
        self.expectations.clear()
        warm = self.run_settings.warm
        pool = WarmPool(self.client, self.cache, self.settings, warm, clock=clock)
        self.warm_pool = pool if pool.enabled else None
        self.reconciler = Reconciler(
            self.client, self.cache, self.settings, expectations=self.expectations, clock=clock,
            warm=self.warm_pool,
        )  # fmt: skip
        queue: WorkQueue[Key] = WorkQueue(
            backoff_base=self.run_settings.backoff_base, backoff_max=self.run_settings.backoff_max
        )
        self.queue = queue
        for key in list(self.cache.clusters):
            queue.put(key)
        tasks = [
            asyncio.create_task(self._work(queue, self.reconciler), name=f"reconcile-{i}")
            for i in range(self.run_settings.workers)
        ]
        tasks.append(asyncio.create_task(self._cleanup_loop(), name="cleanup"))
        if warm.namespaces:
            # also with size 0: deletes the warm pods a previous configuration left
            tasks.append(asyncio.create_task(pool.run(), name="warm-pool"))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Leadership lost (cancelled) or stopping: no reconcile may outlive it.
            queue.close()
            self.queue = None
            stopper.cancel()
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(stopper, *tasks, return_exceptions=True)
            self.warm_pool = None
            if self._stopping.is_set() and warm.namespaces:
                # Stopped while leading (SIGTERM: an upgrade, helm uninstall), before the
                # Lease is released: the warm pods go too; the next leader makes its own.
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(pool.delete_all(), 10)
        if self._stopping.is_set():
            return
        failed = next((t.exception() for t in tasks if not t.cancelled() and t.exception()), None)
        if failed is not None:
            raise failed

    async def _work(self, queue: WorkQueue[Key], reconciler: Reconciler) -> None:
        while True:
            try:
                key = await queue.get()
            except QueueClosed:
                return
            started = time.monotonic()
            try:
                self.reconciles += 1
                after = await reconciler.reconcile(key)
            except Exception as exc:
                self._observe_reconcile(started, exc)
                delay = requeue_after_error(queue, key, exc)
                if isinstance(exc, KubeError):
                    log.info("API error reconciling %s/%s: %s %s; retry in %.1fs",
                             key[0], key[1], exc.status, exc.reason, delay)  # fmt: skip
                else:
                    log.exception("reconcile of %s/%s failed; retry in %.1fs",
                                  key[0], key[1], delay)  # fmt: skip
            else:
                self._observe_reconcile(started, None)
                queue.reset_backoff(key)
                if after is not None:
                    queue.put_after(key, after)
            finally:
                queue.done(key)

    def _observe_reconcile(self, started: float, exc: BaseException | None) -> None:
        outcome = "ok" if exc is None else "error"
        self.metrics.reconcile_seconds.labels(outcome).observe(time.monotonic() - started)
        if exc is not None:
            cause = (
                "conflict"
                if isinstance(exc, Conflict)
                else "throttled"
                if isinstance(exc, Unavailable) and exc.retry_after
                else "error"
            )
            self.metrics.retries.labels(cause).inc()

    def render_metrics(self) -> bytes:
        queue = self.queue
        return self.metrics.render(
            queue_depth=lambda: len(queue) if queue is not None else 0,
            leading=lambda: self.leading,
            clusters=len(self.cache.clusters),
        )

    # -- cleanup of finished clusters ----------------------------------------------------

    async def _cleanup_loop(self) -> None:
        while True:
            await self.cleanup_once()
            await asyncio.sleep(self.run_settings.cleanup_period)

    async def cleanup_once(self) -> int:
        """Delete DaskClusters that ended more than ``completed_max_age`` ago."""
        now = self._clock() if self._clock else time.time()
        deleted = 0
        for (ns, name), cluster in list(self.cache.clusters.items()):
            status = cluster.get("status") or {}
            done = podstate.parse_time(status.get("completionTime"))
            if status.get("phase") not in FINAL or done is None:
                continue
            if now - done < self.run_settings.completed_max_age:
                continue
            try:
                await self.client.delete(DASKCLUSTERS, name, ns)
                deleted += 1
            except NotFound:
                pass
            except KubeError as exc:
                log.warning("could not delete finished cluster %s/%s: %s", ns, name, exc.reason)
        if deleted:
            log.info("deleted %d finished clusters", deleted)
        return deleted
