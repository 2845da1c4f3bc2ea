"""Level-based reconcile of one DaskCluster: read the caches, converge, write status.

Each call looks at the whole current state (never at the event that woke it),
so running it twice changes nothing and a missed event is healed by the next
one. The order of work, for an active cluster:

1. the Secret (minted once), the namespace's shared dashboard Middlewares, the
   Service and the two Traefik routes, then the scheduler Pod, or a warm scheduler pod
   claimed instead (:mod:`.warmpool`) (whatever is missing);
2. the scheduler: exited -> ``Failed`` with its last log lines; not ready after
   the start timeout -> ``Failed`` with the reason the Pod shows; ready ->
   ``Running`` with the addresses of its pod IP, once the routes it created are at
   least ``route_settle_time`` old (Traefik applies them after its throttle);
3. workers (:mod:`.workers`): finished ones deleted, missing ones created in
   growing batches, surplus pending ones deleted;
4. status, written through the status subresource only when it changed, and
   progress on the way to a phase or worker count batched: such a change waits
   up to ``progress_status_delay`` seconds (a requeue, so a later change joins
   the same write), unless the cluster reaches what its spec asks first.

``spec.active: false`` deletes the pods (``Stopping``) and ends ``Stopped``
once none is left. ``Stopped`` and ``Failed`` are final. The Service, routes
and Secret stay until the DaskCluster is deleted, when the garbage collector
removes them with it (they are all owned by it).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jhub_gateway.crd import LABEL_COMPONENT
from jhub_gateway.kube.client import (
    DASKCLUSTERS,
    INGRESSROUTES,
    INGRESSROUTETCPS,
    PODS,
    SECRETS,
    SERVICES,
    AlreadyExists,
    Invalid,
    KubeError,
    NotFound,
    Resource,
)

from . import podstate
from .builders import (
    ClusterSpec,
    build_ingressroute,
    build_ingressroute_tcp,
    build_scheduler_pod,
    build_secret,
    build_service,
    scheduler_pod_name,
    secret_name,
    selector_string,
    service_name,
    worker_selector,
)
from .builders.labels import SCHEDULER, cluster_label_selector
from .builders.scheduler import API_PORT, COMM_PORT, DASHBOARD_PORT
from .builders.secret import API_TOKEN_KEY, TLS_CERT_KEY, TLS_KEY_KEY
from .builders.warm import ANNOTATION_CLAIMED_AT
from .cache import INGRESSROUTE, INGRESSROUTETCP, POD, SECRET, SERVICE, ClusterCache, Key
from .expectations import Expectations
from .middlewares import SharedMiddlewares
from .protocols import ApiClient
from .secrets import ClusterCredentials, new_credentials
from .settings import ControllerSettings
from .status import (
    FAILED,
    FINAL,
    PENDING,
    RUNNING,
    STOPPED,
    STOPPING,
    must_write_now,
    phase_conditions,
)
from .warmpool import WarmPool
from .workers import reconcile_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass
class Context:
    """One reconcile's view of one cluster and the status it is building."""

    key: Key
    cluster: Obj
    status: Obj
    now: float
    requeue: float | None = None
    cleanup: bool = False
    scaling: bool = False
    spec: ClusterSpec | None = field(default=None)
    scheduler: str = ""
    """Name of the cluster's scheduler pod: ``dask-scheduler-<name>``, or a claimed warm pod's."""

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    def requeue_in(self, seconds: float) -> None:
        seconds = max(0.05, seconds)
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)


class Reconciler:
    """Converges DaskClusters; one instance per leadership term (its memory is per term)."""

    def __init__(
        self,
        client: ApiClient,
        cache: ClusterCache,
        settings: ControllerSettings,
        *,
        expectations: Expectations | None = None,
        clock: Callable[[], float] = time.time,
        warm: WarmPool | None = None,
    ) -> None:
        self.client = client
        self.warm = warm
        self.cache = cache
        self.settings = settings
        self.expectations = expectations or Expectations(settings.expectation_timeout)
        self.clock = clock
        self.middlewares = SharedMiddlewares(client, cache, settings)
        # The last status we wrote, by key: the informer may lag behind our own
        # writes, and we are the only writer of status while we lead.
        self._written: dict[Key, tuple[str, Obj]] = {}
        # When a reconcile first held back a progress-only status change, by key.
        self._held: dict[Key, float] = {}
        # The warm pod a cluster claimed in this term, until the cache shows it relabelled.
        self._claimed: dict[Key, str] = {}
        # When we created a cluster's IngressRouteTCP, until Traefik has had time to apply it.
        self._routes_created: dict[Key, float] = {}

    # -- entry point --------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        """Converge ``key``; returns seconds until it wants another look (None: on events)."""
        cluster = self.cache.cluster(key)
        if cluster is None:
            # Deleted: the garbage collector removes the children it owned.
            self.expectations.forget(key)
            self._written.pop(key, None)
            self._held.pop(key, None)
            self._claimed.pop(key, None)
            self._routes_created.pop(key, None)
            return None
        meta = cluster.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return None
        ctx = Context(key, cluster, self._current_status(key, cluster), self.clock())
        await self._converge(ctx)
        await self._write_status(ctx)
        if ctx.cleanup:
            await self._delete_pods(ctx)
        expiry = self.expectations.next_expiry(key)
        if expiry is not None:
            ctx.requeue_in(expiry + 0.05)
        return ctx.requeue

    def _current_status(self, key: Key, cluster: Obj) -> Obj:
        uid = str((cluster.get("metadata") or {}).get("uid") or "")
        written = self._written.get(key)
        if written is not None and written[0] == uid:
            return dict(written[1])
        return dict(cluster.get("status") or {})

    # -- the phases ---------------------------------------------------------------

    async def _converge(self, ctx: Context) -> None:
        phase = ctx.status.get("phase") or PENDING
        spec = ctx.cluster.get("spec") or {}
        # When the user asked for the cluster (its creation), not when we first got to
        # write its status: in a burst that is later by the time it waited in the queue.
        ctx.status.setdefault(
            "startTime", podstate.format_time(_created_at(ctx.cluster) or ctx.now)
        )
        ctx.status["selector"] = selector_string(worker_selector(self.settings.instance, ctx.name))
        if phase in FINAL:
            ctx.cleanup = True
            return
        if spec.get("active", True) is False:
            await self._stop(ctx)
            return
        try:
            ctx.spec = ClusterSpec.from_resource(ctx.cluster, **self.settings.spec_settings())
        except (KeyError, TypeError, ValueError) as exc:
            self._fail(ctx, "InvalidSpec", f"the DaskCluster cannot be run: {exc}")
            return
        try:
            await self._ensure_children(ctx, ctx.spec)
            scheduler = await self._check_scheduler(ctx, phase)
            if scheduler is not None:
                await reconcile_workers(self, ctx, ctx.spec, scheduler)
        except Invalid as exc:
            # The API server refused what the config builds (e.g. bad extra pod config):
            # retrying cannot help, so the cluster fails with the server's explanation.
            self._fail(ctx, "InvalidConfig", f"the API server refused an object: {exc.message}")

    async def _stop(self, ctx: Context) -> None:
        # Stopped only once no pod is left at all, terminating ones included.
        if self.cache.children(POD, ctx.key) or self.expectations.creates(ctx.key, POD):
            self._set_phase(ctx, STOPPING, "StopRequested", "deleting the cluster's pods")
            self._clear_addresses(ctx)
            ctx.cleanup = True
            return
        if ctx.status.get("phase") != STOPPED:
            self._set_phase(ctx, STOPPED, "Stopped", "the cluster was stopped")
            ctx.status["completionTime"] = podstate.format_time(ctx.now)
        self._clear_addresses(ctx)

    def _fail(self, ctx: Context, reason: str, message: str) -> None:
        log.info("cluster %s/%s failed: %s", ctx.namespace, ctx.name, reason)
        self._set_phase(ctx, FAILED, reason, message)
        ctx.status["completionTime"] = podstate.format_time(ctx.now)
        self._clear_addresses(ctx)
        ctx.cleanup = True
        ctx.requeue = None

    @staticmethod
    def _set_phase(ctx: Context, phase: str, reason: str, message: str) -> None:
        ctx.status.update(phase=phase, reason=reason, message=message)

    @staticmethod
    def _clear_addresses(ctx: Context) -> None:
        for key in ("schedulerAddress", "dashboardAddress", "apiAddress"):
            ctx.status.pop(key, None)
        ctx.status["replicas"] = 0

    # -- children -------------------------------------------------------------------

    async def _create(self, ctx: Context, resource: Resource, kind: str, body: Obj) -> Obj | None:
        """Create ``body`` unless the cache or an expectation says it exists already."""
        name = body["metadata"].get("name")
        if name and (
            self.cache.child(kind, ctx.key, name) is not None
            or name in self.expectations.creates(ctx.key, kind)
        ):
            return None
        try:
            created = await self.client.create(resource, body, ctx.namespace)
        except AlreadyExists:
            # Made by us before a restart and not in the cache yet: wait for the informer.
            created = body
        self.expectations.expect_create(ctx.key, kind, created["metadata"]["name"])
        return created

    def _scheduler_name(self, ctx: Context) -> str:
        """The cold pod's name, unless the cluster's scheduler is a claimed warm pod."""
        cold = scheduler_pod_name(ctx.name)
        pods = self.cache.children(POD, ctx.key)
        if cold in pods:
            return cold
        for name, pod in pods.items():
            if ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT) == SCHEDULER:
                return name
        claimed = self._claimed.get(ctx.key)
        if claimed is not None and claimed in self.expectations.creates(ctx.key, POD):
            return claimed
        return cold

    def _has_scheduler(self, ctx: Context) -> bool:
        name = ctx.scheduler
        return self.cache.child(
            POD, ctx.key, name
        ) is not None or name in self.expectations.creates(ctx.key, POD)

    def _credentials(self, ctx: Context) -> ClusterCredentials | None:
        secret = self.cache.child(SECRET, ctx.key, secret_name(ctx.name))
        data = (secret or {}).get("data") or {}
        try:
            values = [
                base64.b64decode(data[k]).decode()
                for k in (TLS_CERT_KEY, TLS_KEY_KEY, API_TOKEN_KEY)
            ]
        except (KeyError, ValueError):
            return None
        return ClusterCredentials(*values)

    async def _ensure_children(self, ctx: Context, spec: ClusterSpec) -> None:
        ctx.scheduler = self._scheduler_name(ctx)
        ctx.status["credentials"] = secret_name(ctx.name)
        ctx.status["schedulerPod"] = ctx.scheduler
        ctx.status["service"] = service_name(ctx.name)
        creds: ClusterCredentials | None = None
        name = secret_name(ctx.name)
        if self.cache.child(SECRET, ctx.key, name) is not None:
            creds = self._credentials(ctx)
        elif name not in self.expectations.creates(ctx.key, SECRET):
            creds = new_credentials(spec.public_name)
            secret = build_secret(
                spec, tls_cert=creds.tls_cert, tls_key=creds.tls_key, api_token=creds.api_token
            )
            # First, and alone: the scheduler Pod mounts it.
            await self._create(ctx, SECRETS, SECRET, secret)
        await self.middlewares.ensure(ctx.namespace)
        # The Service and routes before the scheduler: Traefik needs a moment to apply a
        # new route, and a warm scheduler is ready in a fraction of a second.
        await self._create(ctx, SERVICES, SERVICE, build_service(spec))
        if await self._create(ctx, INGRESSROUTETCPS, INGRESSROUTETCP, build_ingressroute_tcp(spec)):
            self._routes_created[ctx.key] = ctx.now
        await self._create(ctx, INGRESSROUTES, INGRESSROUTE, build_ingressroute(spec))
        # The scheduler Pod is made only while Pending: a Running cluster whose
        # scheduler vanished has lost its workers' state and fails instead.
        if (ctx.status.get("phase") or PENDING) == PENDING and not self._has_scheduler(ctx):
            claimed = None
            if self.warm is not None and creds is not None:
                claimed = await self.warm.claim(
                    spec, creds, lambda pod: self._announce_scheduler(ctx, pod)
                )
            if claimed is not None:
                self._claimed[ctx.key] = claimed
                self.expectations.expect_create(ctx.key, POD, claimed)
                ctx.scheduler = ctx.status["schedulerPod"] = claimed
            else:
                await self._create(ctx, PODS, POD, build_scheduler_pod(spec))

    def _route_settling(self, ctx: Context) -> float:
        """Seconds until the routes we created in this term are live in Traefik (0: are)."""
        created = self._routes_created.get(ctx.key)
        left = 0.0 if created is None else created + self.settings.route_settle_time - ctx.now
        if left <= 0:
            self._routes_created.pop(ctx.key, None)
        return left

    async def _announce_scheduler(self, ctx: Context, pod: str) -> None:
        """Write ``status.schedulerPod`` now (a warm pod is about to become the scheduler)."""
        current = self._current_status(ctx.key, ctx.cluster)
        if current.get("schedulerPod") == pod:
            return
        await self.client.patch_status(DASKCLUSTERS, ctx.name, {"status": {"schedulerPod": pod}},
                                       ctx.namespace)  # fmt: skip
        uid = str((ctx.cluster.get("metadata") or {}).get("uid") or "")
        self._written[ctx.key] = (uid, {**current, "schedulerPod": pod})

    async def _check_scheduler(self, ctx: Context, phase: str) -> Obj | None:
        """The scheduler Pod if it is ready (the cluster is then Running), else None."""
        name = ctx.scheduler
        pod = self.cache.child(POD, ctx.key, name)
        if pod is None or podstate.is_terminating(pod):
            if phase == RUNNING:
                self._fail(ctx, "SchedulerDeleted", "the scheduler pod was deleted")
            else:
                self._check_start_timeout(ctx, None)
            return None
        if podstate.is_finished(pod):
            code = podstate.exit_code(pod)
            logs = await self._log_tail(ctx, name)
            self._fail(ctx, "SchedulerExited",
                       f"the scheduler exited with code {code}" + _with_logs(logs))  # fmt: skip
            return None
        if not podstate.is_ready(pod) or not podstate.pod_ip(pod):
            if phase == RUNNING:
                # Readiness lost after start: the Service stops routing; wait, don't fail.
                return None
            overdue = self._check_start_timeout(ctx, pod)
            if overdue:
                reason, message = podstate.start_failure(pod)
                logs = await self._log_tail(ctx, name)
                self._fail(ctx, reason, f"scheduler: {message} ({overdue})" + _with_logs(logs))
            return None
        ip = podstate.pod_ip(pod)
        if phase != RUNNING:
            settling = self._route_settling(ctx)
            if settling > 0:
                self._set_phase(ctx, PENDING, "SchedulerStarting", "waiting for the routes")
                ctx.requeue_in(settling)
                return None
            self._set_phase(ctx, RUNNING, "SchedulerReady", "")
        ctx.status.update(
            schedulerAddress=f"tls://{ip}:{COMM_PORT}",
            dashboardAddress=f"http://{ip}:{DASHBOARD_PORT}",
            apiAddress=f"http://{ip}:{API_PORT}",
        )
        return pod

    def _check_start_timeout(self, ctx: Context, pod: Obj | None) -> str:
        """Why the scheduler is overdue ("" if not; then a look at the deadline is scheduled).

        The clock starts when the scheduler pod was created, not the DaskCluster: in a
        burst a cluster may wait in the work queue (rate limit) longer than the timeout,
        and that wait is ours, not the scheduler's. A pod created moments ago that the
        cache has not shown yet is not overdue either. A pod that replaces a deleted or
        evicted one gets a fresh timeout, but the whole start is capped at
        ``start_timeout_cap_factor`` timeouts from the DaskCluster's creation, so a
        scheduler that keeps being replaced cannot keep a cluster Pending forever.
        """
        timeout = self._timeout(ctx, "schedulerStartTimeout", self.settings.scheduler_start_timeout)
        if pod is None and ctx.scheduler in self.expectations.creates(ctx.key, POD):
            self._set_phase(ctx, PENDING, "SchedulerStarting", "waiting for the scheduler pod")
            return ""  # the pod's own event brings the next look
        cluster_created = _created_at(ctx.cluster) or ctx.now
        pod_created = (_started_at(pod) if pod is not None else None) or cluster_created
        cap = timeout * self.settings.start_timeout_cap_factor
        deadline, why = pod_created + timeout, f"not ready {timeout:g} s after its pod was created"
        if cluster_created + cap < deadline:
            deadline, why = (
                cluster_created + cap,
                f"not running {cap:g} s after the cluster's creation",
            )
        left = deadline - ctx.now
        if left <= 0:
            if pod is None:
                self._fail(ctx, "StartTimeout", f"no scheduler pod is running ({why})")
            return why
        self._set_phase(ctx, PENDING, "SchedulerStarting", "waiting for the scheduler pod")
        ctx.requeue_in(left)
        return ""

    @staticmethod
    def _timeout(ctx: Context, key: str, default: float) -> float:
        value = ((ctx.cluster.get("spec") or {}).get("config") or {}).get(key)
        return float(value) if isinstance(value, (int, float)) and value > 0 else default

    async def _log_tail(self, ctx: Context, pod: str) -> str:
        try:
            return await self.client.pod_log(
                pod, ctx.namespace, tail_lines=self.settings.log_tail_lines
            )
        except KubeError as exc:
            log.info("could not read the log of %s/%s: %s", ctx.namespace, pod, exc.reason)
            return ""

    # -- deleting pods ------------------------------------------------------------

    def _live_pods(self, ctx: Context) -> dict[str, Obj]:
        """The cluster's pods in the cache that are not already on their way out."""
        gone = self.expectations.deletes(ctx.key, POD)
        return {
            n: p
            for n, p in self.cache.children(POD, ctx.key).items()
            if n not in gone and not podstate.is_terminating(p)
        }

    async def _delete_pods(self, ctx: Context) -> None:
        """All of the cluster's pods, with one deletecollection by its labels."""
        live = self._live_pods(ctx)
        if not live and not self.expectations.creates(ctx.key, POD):
            return
        selector = cluster_label_selector(self.settings.instance, ctx.name)
        await self.client.delete_collection(PODS, ctx.namespace, label_selector=selector)
        for name in [*live, *self.expectations.creates(ctx.key, POD)]:
            self.expectations.expect_delete(ctx.key, POD, name)

    async def delete_pod(self, ctx: Context, name: str) -> None:
        try:
            await self.client.delete(PODS, name, ctx.namespace)
        except NotFound:
            pass
        self.expectations.expect_delete(ctx.key, POD, name)

    # -- status --------------------------------------------------------------------

    async def _write_status(self, ctx: Context) -> None:
        status = ctx.status
        status.setdefault("phase", PENDING)
        generation = (ctx.cluster.get("metadata") or {}).get("generation")
        if generation is not None:
            status["observedGeneration"] = int(generation)
        now = podstate.format_time(ctx.now)
        status["conditions"] = phase_conditions(status, now, scaling=ctx.scaling)
        current = self._current_status(ctx.key, ctx.cluster)
        if status == current:
            self._held.pop(ctx.key, None)
            return
        if not must_write_now(current, status, scaling=ctx.scaling):
            held = self._held.setdefault(ctx.key, ctx.now)
            left = held + self.settings.progress_status_delay - ctx.now
            if left > 0:
                ctx.requeue_in(left)
                return
        self._held.pop(ctx.key, None)
        patch = {k: v for k, v in status.items() if current.get(k) != v}
        patch.update({k: None for k in current if k not in status})
        try:
            await self.client.patch_status(DASKCLUSTERS, ctx.name, {"status": patch},
                                           ctx.namespace)  # fmt: skip
        except NotFound:
            return  # deleted meanwhile
        uid = str((ctx.cluster.get("metadata") or {}).get("uid") or "")
        self._written[ctx.key] = (uid, dict(status))

    def forget_written(self) -> None:
        self._written.clear()
        self._held.clear()


def _created_at(obj: Obj) -> float | None:
    return podstate.parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def _started_at(pod: Obj) -> float | None:
    """When a pod began to be this cluster's scheduler: its claim (a warm pod), or creation."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return podstate.parse_time(annotations.get(ANNOTATION_CLAIMED_AT)) or podstate.created_at(pod)


def _with_logs(logs: str) -> str:
    logs = logs.rstrip()
    return f"; last log lines:\n{logs}" if logs else ""
