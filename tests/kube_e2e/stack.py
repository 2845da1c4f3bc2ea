"""The whole Kubernetes path as processes: emulator+kubelet, Traefik, controller, api replicas.

Everything runs as a child process (the emulator too), so tests may use the
blocking upstream client freely. Objects a Helm install would create for the
api (its Service, EndpointSlice and IngressRoute) are created here by hand,
pointing at the api replicas running on the host at 127.3.0.x.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from jhub_gateway.crd import crd_manifest
from jhub_gateway.kube.client import NAMESPACES, KubeClient, KubeError, Resource
from tests.gatewaytools import basic, free_port
from tests.kube.accounts import grant, issue_token, traefik_access
from tests.polling import until, wait_for

REPO = Path(__file__).parents[2]
TRAEFIK = Path(sys.executable).parent / "traefik"
TRAEFIK_CRDS = REPO / "helm" / "jhub-gateway" / "crds" / "traefik.yaml"
NAMESPACE = "dask"
INSTANCE = "e2e"
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
SERVICES = Resource("", "v1", "services")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
INGRESSROUTES = Resource("traefik.io", "v1alpha1", "ingressroutes")
DASKCLUSTERS = Resource("jhubgateway.dask.org", "v1alpha1", "daskclusters")
PODS = Resource("", "v1", "pods")
SECRETS = Resource("", "v1", "secrets")
COOKIE_SECRET = "ab" * 32

T = TypeVar("T")

API_CONFIG = """
from jhub_gateway.options import Options, Integer, Float
c.GatewayApp.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=2, label="Worker cores"),
    Float("worker_memory", default=0.5, min=0.25, max=2, label="Worker memory (GiB)"),
    handler=lambda opts: {"worker_cores": opts.worker_cores,
                          "worker_memory": "%fG" % opts.worker_memory},
)
c.GatewayApp.cookie_secret = COOKIE
c.KubeBackend.kubeconfig = KUBECONFIG
c.KubeBackend.namespace = NAMESPACE
c.KubeBackend.instance = INSTANCE
c.KubeClusterConfig.scheduler_memory = "512 M"
c.KubeClusterConfig.adaptive_period = 1.0
c.UserQuotas.max_clusters = 1
"""

CONTROLLER_CONFIG = """
c.KubeController.kubeconfig = {kubeconfig!r}
c.KubeController.address = {address!r}
c.KubeController.gateway_instance = {instance!r}
c.KubeController.namespaces = [{namespace!r}]
c.KubeController.api_url = {api_url!r}
c.KubeController.lease_namespace = {namespace!r}
c.KubeController.backoff_max_delay = 5.0
"""


def kube(kubeconfig: Path, call: Callable[[KubeClient], Awaitable[T]]) -> T:
    """Run one ``call(client)`` against the emulator from synchronous test code."""

    async def main() -> T:
        async with await KubeClient.connect(kubeconfig) as client:
            return await call(client)

    return asyncio.run(main())


class Proc:
    """A child process logging to a file; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, cmd: list[str], log: Path, cwd: Path) -> None:
        self.name, self.cmd, self.log, self.cwd = name, cmd, log, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
            )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.text()[-3000:]}")

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class ApiReplica:
    """One ``jhub-gateway --backend kubernetes`` process on its own loopback IP."""

    def __init__(
        self,
        root: Path,
        host: str,
        port: int,
        public: str,
        kubeconfig: Path,
        extra_config: str = "",
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.url = f"http://{host}:{port}"
        config = root / "jhub_gateway_config.py"
        values = {
            "COOKIE": COOKIE_SECRET,
            "KUBECONFIG": str(kubeconfig),
            "NAMESPACE": NAMESPACE,
            "INSTANCE": INSTANCE,
        }
        config.write_text(
            "".join(f"{k} = {v!r}\n" for k, v in values.items()) + API_CONFIG + extra_config
        )
        cmd = [
            sys.executable, "-m", "jhub_gateway.hub_service",
            "--config", str(config), "--backend", "kubernetes",
            "--address", public, "--api-listen", f"{host}:{port}",
            "--data-dir", str(root / "data"), "--log-level", "DEBUG",
        ]  # fmt: skip
        self.proc = Proc(f"api {host}", cmd, root / "api.log", root)

    def start(self, wait: bool = True) -> None:
        self.proc.start()
        if wait:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        wait_for(self._healthy, timeout=60, what=f"{self.proc.name} healthy")

    def _healthy(self) -> bool:
        self.proc.check_alive()
        try:
            return self.request("GET", "/api/health")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.stop()

    def request(
        self, method: str, path: str, body: Any = None, user: str | None = None
    ) -> tuple[int, Any]:
        return http(self.url + path, method, body, user)


def http(
    url: str,
    method: str = "GET",
    body: Any = None,
    user: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    hdrs = {"X-Gateway-Extensions": "1", **(headers or {})}
    if user is not None:
        hdrs["Authorization"] = basic(user)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text.decode(errors="replace")


class Stack:
    """Start order: emulator, CRDs and api objects, Traefik, api replicas, controller."""

    def __init__(self, root: Path, api_config: str = "", controller_config: str = "") -> None:
        """``api_config`` is appended to every api replica's config (e.g. another
        authenticator), ``controller_config`` to the controller's."""
        self.root = root
        self.api_config = api_config
        self.controller_config = controller_config
        self.kubeconfig = root / "kubeconfig"
        self.web, self.tcp, self.ping = free_port(), free_port(), free_port()
        self.api_port = free_port()
        self.public = f"127.0.0.1:{self.web}"
        self.address = f"http://{self.public}"
        self.proxy_address = f"gateway://127.0.0.1:{self.tcp}"
        self.procs: list[Proc] = []
        self.replicas: list[ApiReplica] = []

    # -- start -------------------------------------------------------------------------------
    def start(self) -> None:
        self._start_emulator()
        self.call(self._install)
        self._start_traefik()
        for index, host in enumerate(("127.3.0.1", "127.3.0.2")):
            replica = ApiReplica(
                self.root / f"api{index}",
                host,
                self.api_port,
                self.public,
                self.kubeconfig,
                self.api_config,
            )
            self.replicas.append(replica)
            replica.start(wait=False)  # both start at once: imports dominate their start
        for replica in self.replicas:
            replica.wait_healthy()
        self._start_controller()
        wait_for(
            lambda: http(self.address + "/api/health")[0] == 200,
            timeout=30,
            what="the api through Traefik",
        )

    def _start_emulator(self) -> None:
        cmd = [
            sys.executable, "-m", "tests.kube", "serve",
            "--kubeconfig", str(self.kubeconfig), "--workdir", str(self.root / "kube"),
            "--log-level", "WARNING",
        ]  # fmt: skip
        emulator = Proc("emulator", cmd, self.root / "emulator.log", REPO).start()
        self.procs.append(emulator)

        def url() -> str | None:
            emulator.check_alive()
            match = re.search(r"emulator at (http://\S+)", emulator.text())
            return match.group(1) if match else None

        self.kube_url = wait_for(url, timeout=60, what="the emulator")

    async def _install(self, client: KubeClient) -> None:
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        for crd in [crd_manifest(), *yaml.safe_load_all(TRAEFIK_CRDS.read_text())]:
            await client.create(CRDS, crd)

        async def served() -> bool:  # CRDs are served shortly after they are created
            try:
                await client.list(DASKCLUSTERS, NAMESPACE)
                await client.list(INGRESSROUTES, NAMESPACE)
            except KubeError:
                return False
            return True

        await until(served, timeout=30, what="the CRDs to be served")
        # What the Helm chart makes for the api Deployment, pointed at the host processes.
        await client.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "api", "namespace": NAMESPACE},
                "spec": {"ports": [{"name": "http", "port": 8000, "targetPort": self.api_port}]},
            },
            NAMESPACE,
        )
        await client.create(
            ENDPOINTSLICES,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "api-replicas",
                    "namespace": NAMESPACE,
                    "labels": {"kubernetes.io/service-name": "api"},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [ip], "conditions": {"ready": True, "serving": True}}
                    for ip in ("127.3.0.1", "127.3.0.2")
                ],
                "ports": [{"name": "http", "port": self.api_port, "protocol": "TCP"}],
            },
            NAMESPACE,
        )
        await client.create(
            INGRESSROUTES,
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": {"name": "api", "namespace": NAMESPACE},
                "spec": {
                    "entryPoints": ["web"],
                    "routes": [
                        {
                            "kind": "Rule",
                            "match": "PathPrefix(`/`)",
                            "services": [{"name": "api", "port": 8000}],
                        }
                    ],
                },
            },
            NAMESPACE,
        )

    def _start_traefik(self) -> None:
        """Traefik runs as ServiceAccount ``traefik`` with the chart's read-only Roles."""

        async def token() -> str:
            await grant(self.kube_url, traefik_access("traefik", NAMESPACE, [NAMESPACE]))
            return await issue_token(self.kube_url, NAMESPACE, "traefik")

        cmd = [
            str(TRAEFIK),
            f"--entryPoints.web.address=127.0.0.1:{self.web}",
            f"--entryPoints.tcp.address=127.0.0.1:{self.tcp}",
            f"--entryPoints.ping.address=127.0.0.1:{self.ping}",
            "--ping.entryPoint=ping",
            "--providers.kubernetescrd",
            f"--providers.kubernetescrd.endpoint={self.kube_url}",
            f"--providers.kubernetescrd.token={asyncio.run(token())}",
            f"--providers.kubernetescrd.namespaces={NAMESPACE}",
            "--providers.providersThrottleDuration=200ms",
            "--log.level=INFO",
        ]
        traefik = Proc("traefik", cmd, self.root / "traefik.log", self.root).start()
        self.procs.append(traefik)

        def pinged() -> bool:
            traefik.check_alive()
            try:
                return http(f"http://127.0.0.1:{self.ping}/ping")[0] == 200
            except OSError:
                return False

        wait_for(pinged, timeout=30, what="traefik /ping")

    def _start_controller(self) -> None:
        config = self.root / "controller_config.py"
        health = free_port()
        config.write_text(
            CONTROLLER_CONFIG.format(
                kubeconfig=str(self.kubeconfig),
                address=f"127.0.0.1:{health}",
                instance=INSTANCE,
                namespace=NAMESPACE,
                api_url=f"{self.replicas[0].url}/api",
            )
            + self.controller_config
        )
        cmd = [
            sys.executable, "-m", "jhub_gateway.controller.app",
            "--config", str(config), "--log-level", "DEBUG",
        ]  # fmt: skip
        controller = Proc("controller", cmd, self.root / "controller.log", self.root).start()
        self.procs.append(controller)

        def ready() -> bool:
            controller.check_alive()
            try:
                return http(f"http://127.0.0.1:{health}/readyz")[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout=60, what="controller ready")

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        for proc in reversed(self.procs):  # the emulator last: it stops its kubelet's pods
            proc.stop(timeout=30)

    # -- helpers -----------------------------------------------------------------------------
    def call(self, fn: Callable[[KubeClient], Awaitable[T]]) -> T:
        return kube(self.kubeconfig, fn)

    def pods(self, cluster: str, component: str) -> list[dict]:
        """Pods of a cluster by upstream's labels, as operators' scripts select them."""
        name = cluster.split(".", 1)[1]
        selector = f"app.kubernetes.io/component={component},gateway.dask.org/cluster={name}"

        async def list_pods(client: KubeClient) -> list[dict]:
            items, _ = await client.list(PODS, NAMESPACE, label_selector=selector)
            return [p for p in items if not p["metadata"].get("deletionTimestamp")]

        return self.call(list_pods)

    def daskclusters(self) -> list[dict]:
        return self.call(lambda c: _items(c.list(DASKCLUSTERS, NAMESPACE)))

    def daskcluster(self, cluster: str) -> dict:
        name = cluster.split(".", 1)[1]
        return self.call(lambda c: c.get(DASKCLUSTERS, name, NAMESPACE))

    def cluster_token(self, cluster: str) -> str:
        name = cluster.split(".", 1)[1]
        secret = self.call(lambda c: c.get(SECRETS, f"dask-credentials-{name}", NAMESPACE))
        return base64.b64decode(secret["data"]["api-token"]).decode()


async def _items(listing: Awaitable[tuple[list[dict], str]]) -> list[dict]:
    items, _ = await listing
    return items
