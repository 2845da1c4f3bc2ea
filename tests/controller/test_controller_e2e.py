"""The controller end to end: emulator + process kubelet + real Traefik + real dask processes.

DaskCluster objects are created directly (no api service); a heartbeat sink
plays the service's part towards schedulers (see ``kubeenv``). Tests run in
order on one emulator and one controller process per module.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from distributed import Client
from distributed.security import Security

from jhub_gateway.kube.client import (
    DASKCLUSTERS,
    MIDDLEWARES,
    KubeClient,
)
from tests.kube.apiserver import KubeCluster, launch

from .kubeenv import (
    AUTH_TOKEN,
    ControllerProcess,
    HeartbeatSink,
    Traefik,
    cluster_pods,
    daskcluster,
    ensure_namespace,
    install_crds,
    secret_files,
    wait_for,
)

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "dask"


class Env:
    def __init__(self, kube: KubeCluster, client: KubeClient, sink: HeartbeatSink,
                 traefik: Traefik, controller: ControllerProcess, workdir: Path) -> None:  # fmt: skip
        self.kube = kube
        self.client = client
        self.sink = sink
        self.traefik = traefik
        self.controller = controller
        self.workdir = workdir

    async def create(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return await self.client.create(DASKCLUSTERS, daskcluster(name, **kwargs), NS)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.client.get(DASKCLUSTERS, name, NS)

    async def wait_phase(self, name: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            obj = await self.get(name)
            return obj if (obj.get("status") or {}).get("phase") == phase else None

        try:
            return await wait_for(check, f"{name} to be {phase}", timeout)
        except AssertionError:
            obj = await self.get(name)
            raise AssertionError(f"{name} not {phase}: status={obj.get('status')}\n"
                                 f"{self.controller.log()[-3000:]}") from None  # fmt: skip

    async def pods(self, name: str, component: str = "") -> list[dict[str, Any]]:
        return await cluster_pods(self.client, NS, name, component)

    async def running_workers(self, name: str) -> list[dict[str, Any]]:
        pods = await self.pods(name, "dask-worker")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and p.get("status", {}).get("phase") == "Running"]  # fmt: skip

    async def scale(self, name: str, count: int) -> None:
        """As the service does: ask the scheduler, which heartbeats, which sets replicas."""
        obj = await self.get(name)
        secret = await secret_files(self.client, NS, name, self.workdir / name)
        url = obj["status"]["apiAddress"] + "/api/comm"
        headers = {"Authorization": f"token {secret['api-token']}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"op": "scale", "count": count},
                                    headers=headers) as resp:  # fmt: skip
                assert resp.status == 200, await resp.text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    workdir = tmp_path_factory.mktemp("ctrl-e2e")
    kube = await launch(workdir / "kube", kubelet=True)
    client = await KubeClient.connect(kube.kubeconfig)
    sink = HeartbeatSink(client)
    traefik = Traefik(workdir, kube.url, NS)
    controller = ControllerProcess(workdir, kube.kubeconfig, NS, "http://127.0.0.1:1/api")
    try:
        await install_crds(client)
        await ensure_namespace(client, NS)
        await sink.start()
        controller = ControllerProcess(workdir, kube.kubeconfig, NS, sink.api_url)
        await controller.start()
        await traefik.start()
        await controller.wait_leading()
        yield Env(kube, client, sink, traefik, controller, workdir)
    finally:
        await controller.kill()
        await traefik.stop()
        await sink.stop()
        await client.close()
        await kube.stop()


def _ssl_context(workdir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(workdir / "tls.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(workdir / "tls.crt"), str(workdir / "tls.key"))
    return ctx


async def test_cluster_runs_and_a_worker_computes_through_traefik(env: Env) -> None:
    await env.create("c1")
    obj = await env.wait_phase("c1", "Running")
    status = obj["status"]
    sched = (await env.pods("c1", "dask-scheduler"))[0]
    ip = sched["status"]["podIP"]
    assert status["schedulerAddress"] == f"tls://{ip}:8786"
    assert status["dashboardAddress"] == f"http://{ip}:8787"
    assert status["apiAddress"] == f"http://{ip}:8788"
    assert status["credentials"] == "dask-credentials-c1"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Progressing": "False", "Failed": "False"}
    labels = sched["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "dask-gateway"
    assert labels["gateway.dask.org/instance"] == "gw"
    assert labels["app.kubernetes.io/component"] == "dask-scheduler"

    await env.scale("c1", 1)
    await wait_for(lambda: env.running_workers("c1"), "a running worker")
    await wait_for(lambda: _ready_replicas(env, "c1", 1), "status.replicas == 1")

    tls_dir = env.workdir / "c1"
    security = Security(
        tls_ca_file=str(tls_dir / "tls.crt"),
        tls_client_cert=str(tls_dir / "tls.crt"),
        tls_client_key=str(tls_dir / "tls.key"),
        require_encryption=True,
    )
    address = f"gateway://127.0.0.1:{env.traefik.tcp}/{NS}.c1"

    def compute() -> int:
        with Client(address, security=security, timeout=20) as client:
            return int(client.submit(lambda x: x + 1, 41).result(timeout=20))

    async def computed() -> int:
        try:
            return await asyncio.to_thread(compute)
        except OSError:
            return 0  # Traefik may not have the route yet

    assert await wait_for(computed, "a computation through Traefik's SNI route") == 42


async def _ready_replicas(env: Env, name: str, n: int) -> bool:
    return ((await env.get(name)).get("status") or {}).get("replicas") == n


async def test_dashboard_needs_auth_through_traefik(env: Env) -> None:
    url = f"http://127.0.0.1:{env.traefik.web}/clusters/{NS}.c1/status"

    async def get(headers: dict[str, str]) -> int:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                return resp.status

    async def routed() -> bool:
        return await get({"Authorization": f"token {AUTH_TOKEN}"}) == 200

    await wait_for(routed, "the dashboard through Traefik")
    assert await get({}) == 401
    assert await get({"Authorization": "token wrong"}) == 401
    mws, _ = await env.client.list(MIDDLEWARES, NS)
    assert sorted(m["metadata"]["name"] for m in mws) == [
        "gw-dashboard-auth", "gw-dashboard-strip-prefix"
    ]  # fmt: skip
