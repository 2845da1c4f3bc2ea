"""The node agent: watches, pod workers, EndpointSlices and the kube-proxy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from .api import ApiError, Informer, RawApi
from .container import now_iso
from .endpoints import EndpointSliceController
from .ipam import LoopbackPool
from .mounts import MountNamespaces
from .pod import PodWorker
from .podenv import Resolver
from .proxy import KubeProxy
from .simulated import SimulatedPod, is_simulated

log = logging.getLogger(__name__)

NODE_NAME = "emulated-node"
ROOT_CA = "kube-root-ca.crt"
SYNC_TIMEOUT = 60.0
# Host variables a process cannot run without (locale, venv); everything else
# comes from the pod spec, as in a container.
PASSTHROUGH_ENV = ("LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "SSL_CERT_FILE")


def log_path(workdir: Path, namespace: str, pod: str, container: str) -> Path:
    """Where a container's stdout/stderr go (served as ``pods/log``)."""
    return Path(workdir) / "logs" / f"{namespace}_{pod}_{container}.log"


class Kubelet:
    """A one-node kubelet + EndpointSlice controller + kube-proxy for the emulator."""

    def __init__(
        self,
        api: RawApi,
        workdir: Path,
        node_name: str = NODE_NAME,
        in_cluster_url: str = "",
        ca_pem: bytes = b"",
        simulated: bool = False,
    ) -> None:
        self.api = api
        self.ca_pem = ca_pem
        self.simulated = simulated
        self.mounts = MountNamespaces()
        self.workdir = Path(workdir)
        self.node_name = node_name
        self.pod_ips = LoopbackPool("127.1.0.0/16")
        self.workers: dict[tuple[str, str], PodWorker | SimulatedPod] = {}
        # What pods get as KUBERNETES_SERVICE_HOST/PORT: the HTTPS listener if known.
        url = urlparse(in_cluster_url or api.host)
        self.api_host = url.hostname or "127.0.0.1"
        self.api_port = url.port or (443 if url.scheme == "https" else 80)
        self.token = self._token()
        self.pods = Informer(api, "/api/v1/pods", self._on_pod)
        self.services = Informer(api, "/api/v1/services", self._on_service)
        self.slices = Informer(api, "/apis/discovery.k8s.io/v1/endpointslices", lambda _t, _o: None)
        self.endpoints = EndpointSliceController(
            api, lambda: self.pods.cache, lambda: self.services.cache, node_name
        )
        self.proxy = KubeProxy(api, lambda: self.services.cache, lambda: self.slices.cache)
        self._tasks: list[asyncio.Task] = []
        self._cleanup: set[asyncio.Task] = set()

    def _token(self) -> str:
        keys = self.api.client.configuration.api_key or {}
        value = str(keys.get("BearerToken") or keys.get("authorization") or "")
        return value.removeprefix("Bearer ").strip()

    # -- wiring for PodWorker ----------------------------------------------------
    def log_path(self, ns: str, pod: str, container: str) -> Path:
        return log_path(self.workdir, ns, pod, container)

    def base_env(self, worker: PodWorker) -> dict[str, str]:
        venv_bin = os.path.dirname(sys.executable)
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env.update(
            PATH=f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            HOME=str(worker.dir / "rootfs"),
            HOSTNAME=worker.name,
            KUBERNETES_SERVICE_HOST=self.api_host,
            KUBERNETES_SERVICE_PORT=str(self.api_port),
            KUBERNETES_SERVICE_PORT_HTTPS=str(self.api_port),
        )
        return env

    async def get_object(self, kind: str, ns: str, name: str) -> dict | None:
        try:
            return await self.api.request("GET", f"/api/v1/namespaces/{ns}/{kind}/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
        if kind == "configmaps" and name == ROOT_CA and self.ca_pem:
            # The emulator publishes no kube-root-ca.crt ConfigMaps (tests count
            # namespaces' ConfigMaps); the node knows the cluster CA itself.
            return {"data": {"ca.crt": self.ca_pem.decode()}}
        return None

    async def resolver(self) -> Resolver:
        # A fresh list, not the watch cache: a Service created just before its
        # pods must already resolve when their processes start.
        data = await self.api.request("GET", "/api/v1/services")
        snapshot = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s for s in data.get("items", [])
        }
        return self.proxy.resolve_in(snapshot)

    def pod_status_changed(self, worker: PodWorker) -> None:
        # Pod readiness feeds EndpointSlices once the status round-trips through
        # the API (the watch event), like the real endpoint controller.
        pass

    # -- events ----------------------------------------------------------------
    def _on_pod(self, etype: str, pod: dict) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        key = (meta.get("namespace", ""), meta["name"])
        self.endpoints.pod_changed(pod)
        worker = self.workers.get(key)
        if worker is not None and (etype == "DELETED" or worker.uid != meta.get("uid", "")):
            self._drop(key)
            worker = None
        if etype == "DELETED" or spec.get("nodeName") not in (None, "", self.node_name):
            return
        if worker is None:
            phase = pod.get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed") and not meta.get("deletionTimestamp"):
                return  # finished before this kubelet started; nothing to run
            if meta.get("deletionTimestamp") and not spec.get("nodeName"):
                return  # never scheduled: removing it is the API server's business
            kind = SimulatedPod if is_simulated(pod, self.simulated) else PodWorker
            worker = self.workers[key] = kind(self, pod)
            worker.start()
        worker.update(pod)

    def _drop(self, key: tuple[str, str]) -> None:
        worker = self.workers.pop(key)
        task = asyncio.create_task(worker.shutdown())
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    def _on_service(self, etype: str, svc: dict) -> None:
        ns, name = svc["metadata"].get("namespace", ""), svc["metadata"]["name"]
        self.endpoints.service_changed(ns, name)
        self.proxy.service_changed(ns, name)

    # -- start/stop ------------------------------------------------------------
    async def _register_node(self) -> None:
        """Create the Node object if the API server serves nodes (best effort)."""
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady"}
        ready["lastTransitionTime"] = ready["lastHeartbeatTime"] = now_iso()
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux"},
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "conditions": [ready],
            },
        }
        try:
            await self.api.request("POST", "/api/v1/nodes", body=body)
        except ApiError as exc:
            if exc.status != 409:
                log.info("node object not registered: %s", exc)

    async def start(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        await self._register_node()
        for coro in (
            self.services.run(),
            self.slices.run(),
            self.endpoints.run(),
            self.proxy.run(),
        ):
            self._tasks.append(asyncio.create_task(coro))
        # Services first, so pods started at sync time can resolve names.
        await asyncio.wait_for(self.services.synced.wait(), SYNC_TIMEOUT)
        self._tasks.append(asyncio.create_task(self.pods.run()))
        await asyncio.wait_for(self.pods.synced.wait(), SYNC_TIMEOUT)
        log.info("kubelet %s running against %s", self.node_name, self.api.host)

    async def stop(self) -> None:
        """Stop watching and kill every pod process; pod objects are left as they are."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(w.shutdown() for w in self.workers.values()))
        self.workers.clear()
        if self._cleanup:
            await asyncio.gather(*self._cleanup, return_exceptions=True)
        await self.proxy.stop()
        await self.api.close()


async def start_kubelet(
    kubeconfig: Path,
    workdir: Path,
    *,
    in_cluster_url: str = "",
    ca_pem: bytes = b"",
    simulated: bool = False,
) -> Kubelet:
    """Start a kubelet for the API server in ``kubeconfig``; logs go under ``workdir``.

    ``in_cluster_url`` (an ``https://`` URL) and ``ca_pem`` are what pods get as
    in-cluster config; ``simulated`` runs no processes: pods become Running and
    Ready at once (:mod:`.simulated`; a pod's annotation can choose either way).
    """
    api = await RawApi.from_kubeconfig(Path(kubeconfig))
    kubelet = Kubelet(
        api, Path(workdir), in_cluster_url=in_cluster_url, ca_pem=ca_pem, simulated=simulated
    )
    try:
        await kubelet.start()
    except BaseException:
        await kubelet.stop()
        raise
    return kubelet
