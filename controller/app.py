"""``jhub-gateway-controller``: the Kubernetes controller as a program.

Configured like the service: a traitlets Python file (``-f/--config``) plus
command-line overrides. The configurable class is named ``KubeController``
with upstream's trait names (``c.KubeController.k8s_api_rate_limit = 50``), so
an upstream controller config keeps working; the chart maps its
``controller:`` values (``k8sApiRateLimit``, ``backoffBaseDelay``, ...) onto
them. Kubernetes access is in-cluster when running in a pod, else from
``--kubeconfig`` or ``$KUBECONFIG``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import yaml
from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, validate
from traitlets.config import Application
from traitlets.config.loader import PyFileConfigLoader

from jhub_gateway import __version__
from jhub_gateway.kube.client import CONFIGMAPS, KubeClient, KubeError
from jhub_gateway.kube.ratelimit import RateLimiter

from .crd_upgrade import CrdUpgradeError, upgrade_crds
from .health import HealthServer
from .leader import LeaderElector
from .manager import Controller, RunSettings
from .metrics import ControllerMetrics, may_scrape
from .settings import ControllerSettings
from .warmpool import WarmSettings

USER_AGENT = "jhub-gateway-controller"
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace() -> str:
    """The pod's namespace (service account file or POD_NAMESPACE), else ``default``."""
    try:
        return SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return os.environ.get("POD_NAMESPACE", "") or "default"


def _positive(proposal: dict[str, Any]) -> Any:
    value = proposal["value"]
    if value <= 0:
        raise TraitError(f"{proposal['trait'].name} must be positive, got {value!r}")
    return value


class KubeController(Application):
    """Reconciles DaskCluster resources into schedulers, workers and Traefik routes."""

    name = "jhub-gateway-controller"
    version = __version__
    description = "Kubernetes controller of jhub-gateway: DaskCluster -> pods, services, routes."
    raise_config_file_errors = True

    aliases = {
        "f": "KubeController.config_file",
        "config": "KubeController.config_file",
        "kubeconfig": "KubeController.kubeconfig",
        "log-level": "Application.log_level",
        "health-address": "KubeController.address",
        "crd-dir": "KubeController.crd_dir",
    }

    config_file = Unicode(
        "jhub_gateway_controller_config.py",
        help="The Python config file to load (a missing default file is fine).",
        config=True,
    )
    kubeconfig = Unicode(
        "",
        help="Kubeconfig file; empty = in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config.",
        config=True,
    )
    crd_dir = Unicode(
        "",
        help="Directory of CustomResourceDefinition YAML files (the chart's crds/) whose "
        "specs are patched onto the cluster's CRDs at start, before anything is watched; "
        "empty = leave the CRDs alone.",
        config=True,
    )
    address = Unicode(
        ":8000",
        help="HOST:PORT of the health endpoint (/healthz liveness, /readyz readiness); port 0 = any.",
        config=True,
    )
    metrics_token = Unicode(
        "",
        help="Bearer token that may read /metrics on the health port (env "
        "JHUB_GATEWAY_CONTROLLER_METRICS_TOKEN). Empty: /metrics is refused unless metrics_public.",
        config=True,
    )
    metrics_public = Bool(
        False,
        help="Serve /metrics on the health port to anyone (for a scraper on a network users "
        "cannot reach, e.g. a Prometheus ServiceMonitor inside the cluster).",
        config=True,
    )
    gateway_instance = Unicode(
        help="Name of the gateway instance (the Helm release): only DaskClusters labelled "
        "gateway.dask.org/instance=<this> are reconciled.",
        config=True,
    )
    namespaces = List(
        Unicode(),
        help="Namespaces to watch; empty = all namespaces (needs cluster-wide RBAC).",
        config=True,
    )
    api_url = Unicode(
        help="URL of the gateway api that schedulers heartbeat to, e.g. "
        "http://api-<release>.<namespace>:8000/api.",
        config=True,
    )
    dashboard_auth_url = Unicode(
        "",
        help="Traefik forward-auth URL for dashboards; default: <api_url>/v1/dashboard-auth.",
        config=True,
    )
    proxy_prefix = Unicode("", help="URL prefix of the gateway behind Traefik, e.g. /services/dask-gateway.",
                           config=True)  # fmt: skip
    proxy_web_entrypoint = Unicode("web", help="Traefik entrypoint of HTTP traffic (dashboards).",
                                   config=True)  # fmt: skip
    proxy_tcp_entrypoint = Unicode("tcp", help="Traefik entrypoint of scheduler TLS traffic.",
                                   config=True)  # fmt: skip
    scheduler_cmd = List(Unicode(), ["dask", "scheduler"], minlen=1,
                         help="Command starting a scheduler in the cluster image.", config=True)  # fmt: skip
    worker_cmd = List(Unicode(), ["dask", "worker"], minlen=1,
                      help="Command starting a worker in the cluster image.", config=True)  # fmt: skip
    worker_nanny = Bool(
        False,
        help="Run each worker under a dask nanny process. Off: the kubelet restarts a crashed "
        "or OOM-killed worker container (restartPolicy OnFailure), so a nanny would only "
        "double each pod's start time and idle memory. On for what needs one (NannyPlugins, "
        "Client.restart() in place); one cluster can also append '--nanny' through "
        "KubeClusterConfig.worker_extra_container_config args.",
        config=True,
    )
    scheduler_start_timeout = Float(
        60.0, help="Seconds a scheduler pod may take to become ready (unless the cluster's "
        "config says), then the cluster FAILS with the reason.", config=True,
    )  # fmt: skip
    worker_start_timeout = Float(
        60.0, help="Seconds a worker pod may take to start (unless the cluster's config says).",
        config=True,
    )  # fmt: skip
    start_timeout_cap_factor = Float(
        3.0, min=1.0, help="A cluster not Running this many scheduler start timeouts after its "
        "DaskCluster was created FAILS, however often its scheduler pod was replaced (each "
        "new pod gets a fresh timeout; waiting in the queue in a burst counts here).", config=True,
    )  # fmt: skip
    k8s_api_rate_limit = Float(50.0, help="Average Kubernetes API calls per second (all callers).",
                               config=True)  # fmt: skip
    k8s_api_rate_limit_burst = Integer(100, help="Burst of Kubernetes API calls allowed at once.",
                                       config=True)  # fmt: skip
    backoff_base_delay = Float(0.1, help="Seconds before the first retry of a failed reconcile.",
                               config=True)  # fmt: skip
    backoff_max_delay = Float(300.0, help="Most seconds between retries of a failing reconcile.",
                              config=True)  # fmt: skip
    parallelism = Integer(20, help="Clusters reconciled concurrently.", config=True)
    completed_cluster_max_age = Float(
        86400.0, help="Seconds a Stopped/Failed DaskCluster is kept before it is deleted.",
        config=True,
    )  # fmt: skip
    completed_cluster_cleanup_period = Float(
        600.0, help="Seconds between sweeps deleting old finished DaskClusters.", config=True
    )
    leader_election = Bool(True, help="Elect a leader through a Lease (two replicas are safe).",
                           config=True)  # fmt: skip
    lease_name = Unicode(help="Name of the Lease; default <gateway_instance>-controller.",
                         config=True)  # fmt: skip
    lease_namespace = Unicode(help="Namespace of the Lease; default the controller pod's.",
                              config=True)  # fmt: skip
    lease_duration = Float(
        15.0, help="Seconds a standby waits for an unrenewed Lease.", config=True
    )
    renew_deadline = Float(10.0, help="Seconds the leader may fail to renew before it stops.",
                           config=True)  # fmt: skip
    retry_period = Float(2.0, help="Seconds between Lease renewals and acquire attempts.",
                         config=True)  # fmt: skip

    warm_scheduler_pods = Integer(
        1,
        min=0,
        help="Warm scheduler pods kept per watched namespace (leader only): started, "
        "imported and waiting, so a new cluster whose scheduler pod would look the same "
        "(image, resources, env, extra pod/container config) claims one instead of waiting "
        "for a pod to be scheduled and an interpreter to start. Each costs one idle "
        "scheduler pod's resource requests. 0 turns them off (and deletes existing ones).",
        config=True,
    )
    route_settle_time = Float(
        0.3,
        min=0.0,
        help="Seconds a new cluster's Traefik routes exist before it is reported Running "
        "(Traefik applies route changes after its provider throttle, 0.2 s in the chart): "
        "a warm scheduler is ready sooner, and a client connecting before the route is live "
        "meets Traefik's own certificate.",
        config=True,
    )
    warm_scheduler_config = Dict(
        help="spec.config (a DaskCluster's camelCase keys, e.g. {'image': ...}) of the "
        "scheduler profile warmed before any cluster shows which is used; afterwards the "
        "profile most of a namespace's clusters use is warmed. Empty: the defaults.",
        config=True,
    )
    warm_pod_owner_configmap = Unicode(
        "",
        help="ConfigMap in the controller's namespace that owns unclaimed warm pods and "
        "their Secrets, so deleting it (helm uninstall) deletes them; empty: none (the "
        "leader still deletes them when it stops).",
        config=True,
    )

    @validate(
        "k8s_api_rate_limit", "k8s_api_rate_limit_burst", "backoff_base_delay",
        "backoff_max_delay", "parallelism", "completed_cluster_max_age",
        "completed_cluster_cleanup_period", "scheduler_start_timeout", "worker_start_timeout",
        "lease_duration", "renew_deadline", "retry_period",
    )  # fmt: skip
    def _check_positive(self, proposal: dict[str, Any]) -> Any:
        return _positive(proposal)

    @validate("api_url", "dashboard_auth_url")
    def _check_url(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise TraitError(f"{proposal['trait'].name} must be an http(s) URL, got {value!r}")
        return value

    def initialize(self, argv: list[str] | None = None) -> None:
        """Parse, load the config file, check it; errors raise (``main`` says what to fix)."""
        super().initialize(argv)
        explicit = "config_file" in self.cli_config.get("KubeController", {})
        if explicit and not os.path.exists(self.config_file):
            raise TraitError(f"config file {self.config_file} does not exist")
        if os.path.exists(self.config_file):
            # Not load_config_file(): it turns a bad value into a bare exit(1), and an
            # operator needs to read which trait is wrong.
            path = Path(self.config_file).resolve()
            loaded = PyFileConfigLoader(path.name, path=str(path.parent), log=self.log)
            self.update_config(loaded.load_config())
            self.update_config(self.cli_config)  # the command line wins over the file
        missing = [t for t in ("gateway_instance", "api_url") if not getattr(self, t)]
        if missing:
            raise TraitError(f"set KubeController.{' and KubeController.'.join(missing)}")
        if not self.renew_deadline < self.lease_duration:
            raise TraitError("KubeController.renew_deadline must be below lease_duration")
        level = self.log_level
        # Our loggers at the chosen level, everything else (aiohttp, ...) at WARNING.
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("jhub_gateway").setLevel(level if isinstance(level, (int, str)) else 20)

    def controller_settings(self) -> ControllerSettings:
        return ControllerSettings(
            instance=self.gateway_instance,
            api_url=self.api_url,
            dashboard_auth_url=self.dashboard_auth_url or f"{self.api_url}/v1/dashboard-auth",
            web_entrypoints=(self.proxy_web_entrypoint,),
            tcp_entrypoints=(self.proxy_tcp_entrypoint,),
            route_prefix=self.proxy_prefix.rstrip("/"),
            scheduler_cmd=tuple(self.scheduler_cmd),
            worker_cmd=tuple(self.worker_cmd),
            worker_nanny=self.worker_nanny,
            scheduler_start_timeout=self.scheduler_start_timeout,
            worker_start_timeout=self.worker_start_timeout,
            start_timeout_cap_factor=self.start_timeout_cap_factor,
            route_settle_time=self.route_settle_time,
        )

    def warm_settings(self, owner: dict[str, Any] | None) -> WarmSettings:
        return WarmSettings(
            size=self.warm_scheduler_pods,
            namespaces=tuple(self.namespaces) or (_own_namespace(),),
            follow_clusters=not self.namespaces,
            seed_config=dict(self.warm_scheduler_config),
            owner=owner,
            owner_namespace=_own_namespace(),
            claim_timeout=self.scheduler_start_timeout,
        )

    async def warm_pod_owner(self, client: KubeClient) -> dict[str, Any] | None:
        """The ownerReference of unclaimed warm pods (the chart's ConfigMap), if any."""
        if not self.warm_pod_owner_configmap:
            return None
        try:
            cm = await client.get(CONFIGMAPS, self.warm_pod_owner_configmap, _own_namespace())
        except KubeError as exc:
            self.log.warning("warm pods get no owner: ConfigMap %s: %s",
                             self.warm_pod_owner_configmap, exc.reason)  # fmt: skip
            return None
        meta = cm["metadata"]
        # Not a controller reference: nothing manages warm pods but us.
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": meta["uid"]}

    def run_settings(self, warm: WarmSettings | None = None) -> RunSettings:
        return RunSettings(
            warm=warm if warm is not None else WarmSettings(size=0),
            namespaces=tuple(self.namespaces),
            workers=self.parallelism,
            backoff_base=self.backoff_base_delay,
            backoff_max=self.backoff_max_delay,
            completed_max_age=self.completed_cluster_max_age,
            cleanup_period=self.completed_cluster_cleanup_period,
        )

    async def run(self) -> None:
        limiter = RateLimiter(self.k8s_api_rate_limit, self.k8s_api_rate_limit_burst)
        client = await KubeClient.connect(
            self.kubeconfig or None, limiter=limiter, user_agent=f"{USER_AGENT}/{__version__}"
        )
        if self.crd_dir:
            # before the informers: they list and watch resources of these CRDs
            try:
                await upgrade_crds(client, Path(self.crd_dir))
            except (CrdUpgradeError, KubeError, OSError, yaml.YAMLError) as exc:
                await client.close()
                raise SystemExit(f"jhub-gateway-controller: could not update CRDs: {exc}") from None
        elector = None
        if self.leader_election:
            identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
            elector = LeaderElector(
                client,
                self.lease_name or f"{self.gateway_instance}-controller",
                self.lease_namespace or _own_namespace(),
                identity,
                self.lease_duration,
                self.renew_deadline,
                self.retry_period,
            )
        metrics = ControllerMetrics()
        client.on_response = metrics.observe_api
        warm = self.warm_settings(await self.warm_pod_owner(client))
        controller = Controller(client, self.controller_settings(), self.run_settings(warm),
                                elector=elector, metrics=metrics)  # fmt: skip
        token = self.metrics_token or os.environ.get("JHUB_GATEWAY_CONTROLLER_METRICS_TOKEN", "")
        health = HealthServer(
            live=lambda: {"ok": controller.healthy},
            ready=lambda: {"ok": controller.synced, "leader": controller.leading},
            metrics=controller.render_metrics,
            may_scrape=lambda header: may_scrape(token, self.metrics_public, header),
        )
        host, _, port = self.address.rpartition(":")
        bound = health.listen(host, int(port or 0))
        self.log.info("health endpoint on port %d", bound)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, controller.stop)
        try:
            await controller.run()
        finally:
            await health.stop()
            await client.close()
            self.log.info("jhub-gateway-controller stopped")


def main(argv: list[str] | None = None) -> None:
    app = KubeController()
    try:
        app.initialize(argv)
    except (ValueError, TraitError) as exc:
        raise SystemExit(f"jhub-gateway-controller: configuration error: {exc}") from None
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
