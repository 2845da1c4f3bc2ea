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
    INGRESSROUTES,
    INGRESSROUTETCPS,
    MIDDLEWARES,
    PODS,
    SECRETS,
    SERVICES,
    KubeClient,
    NotFound,
)
from tests.kube.apiserver import KubeCluster, launch
from tests.promtools import sample, scrape

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


METRICS_TOKEN = "controller-scrape-secret"


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
        controller = ControllerProcess(
            workdir, kube.kubeconfig, NS, sink.api_url, metrics_token=METRICS_TOKEN
        )
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
        "gw-dashboard-auth", "gw-dashboard-drop-credentials", "gw-dashboard-strip-prefix"
    ]  # fmt: skip


async def _worker_names(env: Env, name: str) -> set[str]:
    pods = await env.pods(name, "dask-worker")
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


async def test_scale_up_then_down_lets_the_scheduler_retire_a_worker(env: Env) -> None:
    await env.scale("c1", 2)
    await wait_for(lambda: _ready_replicas(env, "c1", 2), "two ready workers")
    assert len(await _worker_names(env, "c1")) == 2
    await env.scale("c1", 1)

    async def one_left() -> bool:
        return len(await env.pods("c1", "dask-worker")) == 1 and await _ready_replicas(env, "c1", 1)

    # The retired worker exits 0 and its pod is deleted, none replaces it.
    await wait_for(one_left, "one worker pod left after the scheduler retired the other")
    assert (await env.get("c1"))["spec"]["replicas"] == 1


async def test_a_deleted_worker_pod_is_replaced(env: Env) -> None:
    (before,) = await _worker_names(env, "c1")
    await env.client.delete(PODS, before, NS)

    async def replaced() -> set[str] | None:
        names = await _worker_names(env, "c1")
        ready = await _ready_replicas(env, "c1", 1)
        return names if ready and len(names) == 1 and before not in names else None

    after = await wait_for(replaced, "a new worker pod replacing the deleted one")
    assert before not in after


async def test_leader_killed_mid_scale_standby_converges_without_duplicates(env: Env) -> None:
    standby = ControllerProcess(env.workdir, env.kube.kubeconfig, NS, env.sink.api_url,
                                name="standby", metrics_token=METRICS_TOKEN)  # fmt: skip
    await standby.start()
    try:
        await standby.wait_ready()
        assert not (await standby.probe("/readyz") or {}).get("leader")
        await env.scale("c1", 4)
        await wait_for(lambda: _replicas_requested(env, "c1", 4), "spec.replicas == 4")
        await env.controller.kill()  # SIGKILL: no Lease release, mid-scale
        await standby.wait_leading()
        await wait_for(lambda: _ready_replicas(env, "c1", 4), "four ready workers", timeout=90)
        assert len(await env.pods("c1", "dask-worker")) == 4
    finally:
        # The killed one comes back as the standby; the standby keeps leading.
        env.controller, old = standby, env.controller
        await old.start()
        await old.wait_ready()


async def _replicas_requested(env: Env, name: str, n: int) -> bool:
    return (await env.get(name))["spec"].get("replicas") == n


async def test_stop_deletes_pods_and_ends_stopped(env: Env) -> None:
    # Another gateway instance's pod claiming the same cluster name is foreign: never touched.
    foreign = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "foreign",
            "labels": {"gateway.dask.org/cluster": "c1", "gateway.dask.org/instance": "other"},
        },
        "spec": {"containers": [{"name": "main", "image": "x",
                                 "command": ["python", "-c", "import time; time.sleep(600)"]}]},
    }  # fmt: skip
    await env.client.create(PODS, foreign, NS)
    await env.client.patch(DASKCLUSTERS, "c1", {"spec": {"active": False}}, NS)
    await wait_for(lambda: _phase_seen(env, "c1", "Stopping"), "Stopping or later")
    obj = await env.wait_phase("c1", "Stopped")
    assert obj["status"]["completionTime"]
    assert "schedulerAddress" not in obj["status"]
    names = [p["metadata"]["name"] for p in await env.pods("c1")]
    assert names == ["foreign"]
    await env.client.delete(PODS, "foreign", NS, grace_period_seconds=0)
    await wait_for(lambda: _no_pods(env, "c1"), "the foreign pod to go")


async def _phase_seen(env: Env, name: str, phase: str) -> bool:
    current = ((await env.get(name)).get("status") or {}).get("phase")
    order = ["Pending", "Running", "Stopping", "Stopped"]
    return current in order and order.index(current) >= order.index(phase)


async def test_deleting_the_daskcluster_leaves_no_child_object(env: Env) -> None:
    await env.client.delete(DASKCLUSTERS, "c1", NS)
    selector = "gateway.dask.org/cluster=c1"

    async def all_gone() -> bool:
        for resource in (PODS, SECRETS, SERVICES, INGRESSROUTES, INGRESSROUTETCPS):
            items, _ = await env.client.list(resource, NS, label_selector=selector)
            if items:
                return False
        try:
            await env.get("c1")
        except NotFound:
            return True
        return False

    await wait_for(all_gone, "garbage collection of every child")
    # The shared, instance-level Middlewares stay for the namespace's other clusters.
    mws, _ = await env.client.list(MIDDLEWARES, NS)
    assert len(mws) == 3


async def test_a_scheduler_that_exits_fails_the_cluster_with_its_log(env: Env) -> None:
    bad = {"schedulerExtraContainerConfig": {"args": ["--no-such-option"]}}
    await env.create("exits", config=bad)
    obj = await env.wait_phase("exits", "Failed")
    status = obj["status"]
    assert status["reason"] == "SchedulerExited"
    assert "no-such-option" in status["message"]  # the scheduler's own error, from its log
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "SchedulerExited"
    await wait_for(lambda: _no_pods(env, "exits"), "the failed cluster's pods to go")
    # Still in status after the pod is gone.
    assert "no-such-option" in (await env.get("exits"))["status"]["message"]


async def _no_pods(env: Env, name: str) -> bool:
    return await env.pods(name) == []


async def test_a_scheduler_never_ready_fails_after_the_start_timeout(env: Env) -> None:
    never = {
        # long enough for the scheduler to have logged something on a loaded machine
        "schedulerStartTimeout": 10,
        "schedulerExtraContainerConfig": {
            "readinessProbe": {"httpGet": {"path": "/never", "port": "http-api"}}
        },
    }
    await env.create("stuck", config=never)
    obj = await env.wait_phase("stuck", "Failed", timeout=60)
    assert obj["status"]["reason"] == "StartTimeout"
    assert "did not become ready" in obj["status"]["message"]
    assert "last log lines" in obj["status"]["message"]
    await wait_for(lambda: _no_pods(env, "stuck"), "the stuck cluster's pods to go")


async def test_metrics_count_reconciles_and_api_requests_for_the_token_holder(env: Env) -> None:
    url = f"http://127.0.0.1:{env.controller.health_port}/metrics"
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 403
                assert "metrics_token" in (await resp.json())["message"]
    await env.create("metered")
    await env.wait_phase("metered", "Running", timeout=90)
    samples = await scrape(url, {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert sample(samples, "jhub_gateway_controller_leader") == 1
    assert sample(samples, "jhub_gateway_controller_reconcile_duration_seconds_count",
                  outcome="ok") >= 1  # fmt: skip
    assert sample(samples, "jhub_gateway_controller_api_requests_total", verb="POST",
                  code="2xx") >= 1  # fmt: skip
    assert sample(samples, "jhub_gateway_controller_queue_depth") >= 0
    await env.client.delete(DASKCLUSTERS, "metered", NS)


async def test_controller_stops_promptly_on_sigterm(env: Env) -> None:
    assert await env.controller.terminate() == 0
    assert "released lease" in env.controller.log()
