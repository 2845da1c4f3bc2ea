"""The ``kubernetes`` backend: DaskCluster objects in, informer-cached state out.

The service keeps no state of its own. It creates ``DaskCluster`` objects,
patches ``spec.active`` (stop) and ``spec.replicas`` (from scheduler
heartbeats), and reads everything else (phase, addresses, credentials) from
informer caches of DaskClusters, their Secrets and scheduler Pods. Each cache
event rebuilds that cluster's ``Cluster`` in the registry, which also wakes
``?wait`` long-polls, so no request polls or GETs the API for state. Any number
of api replicas serve the same clusters; quotas hold across them through the
per-user :mod:`.ledger`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from traitlets import Bool, Float, Integer, Unicode, default, validate

from jhub_gateway.crd import (
    GROUP,
    LABEL_CLUSTER,
    LABEL_COMPONENT,
    PLURAL,
    parse_public_name,
    public_name,
)
from jhub_gateway.kube.client import (
    DASKCLUSTERS,
    PODS,
    SECRETS,
    KubeClient,
    KubeError,
    NotFound,
)
from jhub_gateway.kube.informer import Informer, Key
from jhub_gateway.kube.ratelimit import RateLimiter
from jhub_gateway.models import Cluster, User
from jhub_gateway.names import new_cluster_name

from ...cluster_config import ClusterConfig
from ...errors import InvalidOptions, ServiceUnavailable
from ...quotas import Footprint, UserQuotas
from ..base import Backend, GatewayContext
from .config import KubeClusterConfig, default_namespace, from_spec_config, to_spec_config
from .errors import gateway_error, kube_errors
from .ledger import QuotaLedger
from .lookup import DirectLookup
from .model import (
    ANNOTATION_STOP_MESSAGE,
    ANNOTATION_STOP_REASON,
    build_daskcluster,
    cluster_from_objects,
    instance_selector,
    is_active,
    secret_name,
)
from .owner_pod import server_pod_owner

SCHEDULER_COMPONENT = "dask-scheduler"


class KubeBackend(Backend):
    """Clusters as ``DaskCluster`` resources, run by ``jhub-gateway-controller``."""

    kubeconfig = Unicode(
        None,
        allow_none=True,
        help="Path of a kubeconfig file. None: in-cluster credentials in a pod, else $KUBECONFIG.",
        config=True,
    )
    instance = Unicode(
        "jhub-gateway",
        help="""Gateway instance name (the Helm release): the ``app.kubernetes.io/instance``
        label of every object, which the controller selects on. Must match the controller's.""",
        config=True,
    )
    namespace = Unicode(
        help="""Namespace of the gateway: default namespace of new clusters
        (``KubeClusterConfig.namespace``) and home of the per-user quota ledgers.
        Default: POD_NAMESPACE, else the service account's namespace, else 'default'.""",
        config=True,
    )
    k8s_api_rate_limit = Float(
        50.0,
        min=0.1,
        help="Steady Kubernetes API requests per second of this replica.",
        config=True,
    )
    k8s_api_rate_limit_burst = Integer(
        100, min=1, help="Burst of Kubernetes API requests above the steady rate.", config=True
    )
    startup_timeout = Float(
        30.0,
        min=1,
        help="Seconds to wait at start for the first list of DaskClusters, Secrets and Pods.",
        config=True,
    )
    heartbeat_pod_wait = Float(
        5.0,
        min=0,
        help="Seconds a heartbeat may wait for the scheduler pod's IP to reach the cache.",
        config=True,
    )
    reservation_grace = Float(
        60.0,
        min=5,
        help="""Seconds a quota reservation counts while its DaskCluster is not in the
        cache yet (longer than any cache lag; a failed create's reservation then lapses).""",
        config=True,
    )
    bind_to_notebook_pod = Bool(
        True,
        help="""Make each DaskCluster owned by its user's notebook pod when that pod runs in
        the cluster's namespace (KubeSpawner's ``component=singleuser-server`` pods), so the
        API server deletes the cluster with the pod even while the gateway is down. Clusters
        set to ``keep_after_server_stops`` are never bound. Needs ``list pods`` there.""",
        config=True,
    )
    lookup_timeout = Float(
        5.0,
        min=0,
        help="""Seconds a request may spend GETting a cluster this replica's cache has not
        seen yet (created through another replica a moment ago); 0 = answer from the cache only.""",
        config=True,
    )

    @default("cluster_config_class")
    def _default_config_class(self) -> type:
        return KubeClusterConfig

    @default("namespace")
    def _default_namespace(self) -> str:
        return default_namespace()

    @validate("cluster_config_class")
    def _check_config_class(self, proposal: dict) -> type:
        if not issubclass(proposal["value"], KubeClusterConfig):
            raise ValueError("KubeBackend.cluster_config_class must subclass KubeClusterConfig")
        return proposal["value"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The same limits the service layer applies (same config), enforced across replicas.
        self.quotas = UserQuotas(parent=self.parent)
        self.client: KubeClient | None = None
        self.clusters_informer: Informer | None = None
        self.secrets_informer: Informer | None = None
        self.pods_informer: Informer | None = None
        self.ledger: QuotaLedger | None = None
        # Responses to our own writes, shown until the watch delivers them (read-your-writes).
        self._overlay: dict[Key, dict[str, Any]] = {}
        self._secret_overlay: dict[Key, dict[str, Any]] = {}
        self.lookup: DirectLookup | None = None
        self._pod_events: dict[Key, asyncio.Event] = {}
        self._replica_locks: dict[Key, asyncio.Lock] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    async def setup(self, context: GatewayContext) -> None:
        try:
            self.client = await KubeClient.connect(
                self.kubeconfig,
                limiter=RateLimiter(self.k8s_api_rate_limit, self.k8s_api_rate_limit_burst),
            )
        except Exception as exc:  # any config loading failure: say what to fix
            raise ValueError(
                f"cannot load Kubernetes credentials (KubeBackend.kubeconfig={self.kubeconfig!r}): {exc}"
            ) from None
        await self._check_crd()
        selector = instance_selector(self.instance)
        self.clusters_informer = Informer(
            self.client, DASKCLUSTERS, label_selector=selector, on_change=self._on_cluster
        )
        self.secrets_informer = Informer(
            self.client, SECRETS, label_selector=selector, on_change=self._on_secret
        )
        self.pods_informer = Informer(
            self.client,
            PODS,
            label_selector=f"{selector},{LABEL_COMPONENT}={SCHEDULER_COMPONENT}",
            on_change=self._on_pod,
        )
        informers = (self.clusters_informer, self.secrets_informer, self.pods_informer)
        for informer in informers:
            informer.start()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(i.synced() for i in informers)), self.startup_timeout
            )
        except (asyncio.TimeoutError, RuntimeError) as exc:
            await self.cleanup()
            raise ValueError(
                f"could not list DaskClusters, Secrets and Pods within {self.startup_timeout:g} s "
                f"({type(exc).__name__}); check the API server address and RBAC"
            ) from None
        self.lookup = DirectLookup(
            self.client,
            self.instance,
            self.clusters_informer,
            self.secrets_informer,
            cached=self._object,
            remember_cluster=self._remember,
            remember_secret=self._remember_secret,
            timeout=self.lookup_timeout,
        )
        self.ledger = QuotaLedger(
            self.client,
            self.namespace,
            self.instance,
            lookup=self.get_cluster,
            active_of=lambda username: [
                c for c in self.registry.select(username, None) if c.status.is_active
            ],
            config_of=self.cluster_config,
            grace=self.reservation_grace,
        )
        self.log.info(
            "kubernetes backend ready: instance %s, %d cluster(s) known",
            self.instance,
            len(self.clusters_informer.cache),
        )

    async def _check_crd(self) -> None:
        assert self.client is not None
        try:
            await self.client.list(DASKCLUSTERS, page_size=1)
        except NotFound:
            raise ValueError(
                f"the DaskCluster CRD ({PLURAL}.{GROUP}) is not installed; apply "
                "helm/jhub-gateway/crds/daskclusters.yaml"
            ) from None
        except KubeError as exc:
            raise ValueError(f"cannot reach the Kubernetes API: {exc}") from None

    async def cleanup(self) -> None:
        for informer in (self.clusters_informer, self.secrets_informer, self.pods_informer):
            if informer is not None:
                await informer.stop()
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def health(self) -> dict[str, dict]:
        informers = {
            "daskclusters": self.clusters_informer,
            "secrets": self.secrets_informer,
            "pods": self.pods_informer,
        }
        details = {
            name: {
                "synced": i is not None and i.has_synced,
                "failures": i.consecutive_failures if i is not None else None,
            }
            for name, i in informers.items()
        }
        ok = all(d["synced"] and (d["failures"] or 0) < 3 for d in details.values())
        return {"kubernetes": {"ok": ok, "informers": details}}

    # -- the cache view --------------------------------------------------------------------------
    def _object(self, key: Key) -> dict[str, Any] | None:
        if key in self._overlay:
            return self._overlay[key]
        return self.clusters_informer.get(*key) if self.clusters_informer else None

    def _refresh(self, key: Key) -> None:
        namespace, name = key
        obj = self._object(key)
        public = public_name(namespace, name)
        if obj is None:
            self._configs.pop(public, None)
            self._replica_locks.pop(key, None)
            self._secret_overlay.pop(key, None)
            self.registry.remove(public)
            return
        secret = (
            self.secrets_informer.get(namespace, secret_name(obj))
            if self.secrets_informer
            else None
        ) or self._secret_overlay.get(key)
        config = from_spec_config((obj.get("spec") or {}).get("config") or {}, namespace)
        self.registry.add(cluster_from_objects(obj, secret, config))

    def _on_cluster(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        mine = self._overlay.get(key)
        if mine is not None and (etype == "DELETED" or _not_older(obj, mine)):
            del self._overlay[key]
        self._refresh(key)

    def _on_secret(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        cluster = (meta.get("labels") or {}).get(LABEL_CLUSTER)
        if cluster:
            key = (str(meta.get("namespace", "")), str(cluster))
            self._secret_overlay.pop(key, None)
            self._refresh(key)

    def _on_pod(self, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        event = self._pod_events.pop(
            (str(meta.get("namespace", "")), str(meta.get("name", ""))), None
        )
        if event is not None:
            event.set()

    def _remember(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        self._overlay[key] = obj
        self._refresh(key)

    def _remember_secret(self, key: Key, secret: dict[str, Any]) -> None:
        self._secret_overlay[key] = secret
        self._refresh(key)

    async def ensure_known(self, name: str) -> None:
        """On a cache miss, GET the cluster (and its Secret) once, so no lookup 404s a cluster
        that exists; see :mod:`.lookup` for the bounds."""
        key = self._key(name)
        if key is not None and self.lookup is not None:
            await self.lookup.ensure(key)

    @staticmethod
    def _key(name: str) -> Key | None:
        try:
            return parse_public_name(name)
        except ValueError:
            return None

    # -- starting and stopping -------------------------------------------------------------------
    async def start_cluster(self, user: User, options: dict, config: ClusterConfig) -> Cluster:
        assert self.client is not None and self.ledger is not None
        if not isinstance(config, KubeClusterConfig):
            raise InvalidOptions("the kubernetes backend needs a KubeClusterConfig")
        name = new_cluster_name()
        namespace = config.namespace
        public = public_name(namespace, name)
        limits = self.quotas.limits_for(user)
        reserved = any(v is not None for v in (limits.clusters, limits.cores, limits.memory))
        if reserved:
            footprint = Footprint.of(config, 0)
            with kube_errors("check your quota"):
                await self.ledger.reserve(user, limits, public, footprint.cores, footprint.memory)
        body = build_daskcluster(
            name=name,
            namespace=namespace,
            instance=self.instance,
            username=user.name,
            groups=user.groups,
            options=options,
            config=to_spec_config(config),
        )
        try:
            if self.bind_to_notebook_pod and not config.keep_after_server_stops:
                await self._bind_to_server_pod(body, namespace, user.name)
            with kube_errors("create the cluster"):
                created = await self.client.create(DASKCLUSTERS, body, namespace)
        except BaseException:
            if reserved:
                try:
                    await self.ledger.release(user, public)
                except KubeError:
                    self.log.info("could not release the reservation of %s; it lapses", public)
            raise
        self._remember(created)
        if self.lookup is not None:
            self.lookup.forget_miss((namespace, name))
        cluster = self.registry.get(public)
        assert cluster is not None
        self.log.info("created DaskCluster %s for %s", public, user.name)
        return cluster

    async def _bind_to_server_pod(self, body: dict, namespace: str, username: str) -> None:
        assert self.client is not None
        try:
            owner = await server_pod_owner(self.client, namespace, username)
        except KubeError as exc:
            # no binding is no harm: the server watch still stops the cluster
            self.log.info("not binding to the notebook pod (%s %s)", exc.status, exc.reason)
            return
        if owner is not None:
            body["metadata"].setdefault("ownerReferences", []).append(owner)

    async def stop_cluster(
        self, name: str, *, reason: str, message: str = "", failed: bool = False
    ) -> None:
        key = self._key(name)
        obj = self._object(key) if key else None
        if key is None or obj is None or not (obj.get("spec") or {}).get("active", True):
            return  # unknown, or already asked to stop: idempotent
        if not is_active(obj):
            return
        patch = {
            "metadata": {
                "annotations": {ANNOTATION_STOP_REASON: reason, ANNOTATION_STOP_MESSAGE: message}
            },
            "spec": {"active": False},
        }
        assert self.client is not None
        try:
            patched = await self.client.patch(DASKCLUSTERS, key[1], patch, key[0])
        except NotFound:
            return  # deleted meanwhile: nothing left to stop
        except KubeError as exc:
            raise gateway_error(exc, "stop the cluster") from None
        self._remember(patched)
        self.log.info("stop requested for cluster %s: %s", name, reason)

    # -- scaling ---------------------------------------------------------------------------------
    async def reserve_workers(self, owner: User, cluster: Cluster, count: int) -> int:
        """``count`` bound by the owner's quota as every replica counts it (see the ledger)."""
        limits = self.quotas.limits_for(owner)
        if all(v is None for v in (limits.workers, limits.cores, limits.memory)):
            return count
        assert self.ledger is not None
        with kube_errors("check your quota"):
            return await self.ledger.reserve_workers(owner, limits, cluster, count)

    async def on_heartbeat(self, name: str, heartbeat: dict) -> None:
        key = self._key(name)
        obj = self._object(key) if key else None
        if key is None or obj is None or not is_active(obj):
            return
        await self._verify_addresses(key, obj, heartbeat)
        await self._set_replicas(key, int(heartbeat.get("count", 0)))

    async def request_workers(self, name: str, count: int) -> None:
        # The scheduler's heartbeat will ask for this too; patching now saves a round trip.
        key = self._key(name)
        obj = self._object(key) if key else None
        if key is not None and obj is not None and is_active(obj):
            if count > int((obj.get("spec") or {}).get("replicas") or 0):
                await self._set_replicas(key, count)

    async def _set_replicas(self, key: Key, count: int) -> None:
        lock = self._replica_locks.setdefault(key, asyncio.Lock())
        async with lock:  # one writer per cluster in this replica: no reordered patches
            obj = self._object(key)
            if obj is None or int((obj.get("spec") or {}).get("replicas") or 0) == count:
                return
            assert self.client is not None
            with kube_errors("scale the cluster"):
                patched = await self.client.patch(
                    DASKCLUSTERS, key[1], {"spec": {"replicas": count}}, key[0]
                )
            self._remember(patched)

    async def _verify_addresses(self, key: Key, obj: dict[str, Any], heartbeat: dict) -> None:
        """Heartbeats come from user code: they may only name the scheduler pod's own IP."""
        claimed = {
            field: heartbeat[field]
            for field in ("scheduler_address", "dashboard_address", "api_address")
            if heartbeat.get(field)
        }
        if not claimed:
            return
        pod_name = str((obj.get("status") or {}).get("schedulerPod") or f"dask-scheduler-{key[1]}")
        pod_ip = await self._pod_ip((key[0], pod_name))
        if pod_ip is None:
            raise ServiceUnavailable(
                "the scheduler pod has no IP yet; retry the heartbeat",
                reason="scheduler_pod_unknown",
                retry_after=1,
            )
        for field, address in claimed.items():
            host = urlsplit(address if "://" in address else f"//{address}").hostname
            if host != pod_ip:
                raise InvalidOptions(
                    f"heartbeat {field} {address!r} is not on the scheduler pod's IP",
                    reason="address_mismatch",
                )

    async def _pod_ip(self, key: Key) -> str | None:
        """The pod's IP from the cache, waiting (on cache events) up to ``heartbeat_pod_wait``."""
        deadline = time.monotonic() + self.heartbeat_pod_wait
        while True:
            pod = self.pods_informer.get(*key) if self.pods_informer else None
            ip = ((pod or {}).get("status") or {}).get("podIP")
            remaining = deadline - time.monotonic()
            if ip or remaining <= 0:
                return ip or None
            event = self._pod_events.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def _not_older(seen: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Whether a watched object is at least as new as our write's response.

    resourceVersions are opaque strings in the API; etcd (and the emulator) make
    them increasing integers, and anything else drops the overlay at once.
    """
    try:
        return int(seen["metadata"]["resourceVersion"]) >= int(mine["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True
