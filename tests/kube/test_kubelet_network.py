"""Process kubelet networking: readiness, EndpointSlices, ClusterIP proxy, Service names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from tests.kube.kubelet.fixtures import cluster  # noqa: F401
from tests.kube.kubelet.testing import Kube, container_status, pod, ready, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "kubelet-net"
SLICES = "apis/discovery.k8s.io/v1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube(cluster):  # noqa: F811
    _, api, workdir = cluster
    k = Kube(api, workdir, NS)
    await k.ensure_namespace()
    return k


def web_pod(name: str) -> dict:
    """http.server on $(POD_IP):8080 serving an emptyDir; Ready while /data/ready exists."""
    return pod(
        name,
        ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)", "--directory", "/data"],
        labels={"app": "web"},
        container={
            "ports": [{"name": "http", "containerPort": 8080}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "readinessProbe": {
                "httpGet": {"path": "/ready", "port": "http"},
                "periodSeconds": 1,
                "failureThreshold": 1,
            },
        },
        volumes=[{"name": "data", "emptyDir": {}}],
    )


def data_dir(kube: Kube, name: str) -> Path:
    (found,) = (kube.workdir / "pods").glob(f"{NS}_{name}_*/volumes/data")
    return found


async def slice_endpoints(kube: Kube) -> list[dict]:
    sl = await kube.get("endpointslices", "web-emulated", SLICES)
    return (sl or {}).get("endpoints") or []


async def http_get(url: str) -> str:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as resp:
            return f"{resp.status} {await resp.text()}"


async def test_readiness_slices_proxy_and_dns(kube: Kube) -> None:
    service = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
        },
    }
    await kube.create("services", service)
    await kube.create("pods", web_pod("web-1"))

    # Running but not Ready (no /ready file): listed in the slice as not ready.
    async def listed_not_ready() -> list[dict]:
        eps = await slice_endpoints(kube)
        return [e for e in eps if e["conditions"]["ready"] is False]

    (ep,) = await wait_for(listed_not_ready, what="not-ready endpoint")
    running = await kube.get("pods", "web-1")
    assert running is not None and not ready(running)
    assert ep["addresses"] == [running["status"]["podIP"]]
    assert ep["targetRef"]["name"] == "web-1"
    sl = await kube.get("endpointslices", "web-emulated", SLICES)
    assert sl is not None
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
    assert sl["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    typed = await client.DiscoveryV1Api(kube.api.client).list_namespaced_endpoint_slice(
        NS, label_selector="kubernetes.io/service-name=web"
    )
    assert [i.metadata.name for i in typed.items] == ["web-emulated"]

    # The readiness probe flips Ready, and the slice follows.
    (data_dir(kube, "web-1") / "ready").write_text("ok")
    await kube.wait_pod("web-1", ready, "Ready")

    async def listed_ready() -> list[dict]:
        return [e for e in await slice_endpoints(kube) if e["conditions"]["ready"]]

    await wait_for(listed_ready, what="ready endpoint")

    # kube-proxy: the ClusterIP forwards to the pod.
    svc = await kube.get("services", "web")
    assert svc is not None
    cluster_ip = svc["spec"]["clusterIP"]
    assert cluster_ip.startswith("127.2.")

    async def through_proxy() -> bool:
        return await http_get(f"http://{cluster_ip}:80/ready") == "200 ok"

    await wait_for(through_proxy, what="response through the ClusterIP")

    # Service names in args are rewritten to the ClusterIP before the process starts.
    client_script = (
        "import sys, urllib.request\n"
        "for url in sys.argv[1:]:\n"
        "    print('GOT', url, urllib.request.urlopen(url, timeout=10).read().decode(), flush=True)\n"
    )
    urls = [
        f"http://web.{NS}.svc.cluster.local/ready",
        f"http://web.{NS}:80/ready",
        "http://web/ready",
    ]
    await kube.create(
        "pods", pod("client", ["python", "-c", client_script, *urls], restartPolicy="Never")
    )
    done = await kube.wait_pod(
        "client", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), "finished"
    )
    log = kube.log("client")
    assert container_status(done)["state"]["terminated"]["exitCode"] == 0, log
    for url in (f"http://{cluster_ip}/ready", f"http://{cluster_ip}:80/ready"):
        assert f"GOT {url} ok" in log, log

    # Not ready again: the slice says so and the proxy stops sending traffic there.
    (data_dir(kube, "web-1") / "ready").unlink()
    await wait_for(listed_not_ready, what="endpoint back to not ready")

    async def refused() -> bool:
        try:
            await http_get(f"http://{cluster_ip}:80/ready")
        except aiohttp.ClientError:
            return True
        return False

    await wait_for(refused, what="proxy dropping connections without ready endpoints")

    # Deleting the pod kills its server and empties the slice.
    await kube.delete("pods", "web-1")

    async def empty() -> bool:
        return await slice_endpoints(kube) == [] and await kube.get("pods", "web-1") is None

    await wait_for(empty, what="slice emptied after deletion")
    with pytest.raises((aiohttp.ClientConnectionError, asyncio.TimeoutError)):
        await http_get(f"http://{running['status']['podIP']}:8080/")


async def test_headless_service_resolves_to_pod_ip(kube: Kube) -> None:
    service = {
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5000}]},
    }
    await kube.create("services", service)
    cmd = ["python", "-m", "http.server", "5000", "--bind", "$(POD_IP)"]
    probe = {"tcpSocket": {"port": 5000}, "periodSeconds": 1}
    await kube.create(
        "pods", pod("db-0", cmd, labels={"app": "db"}, container={"readinessProbe": probe})
    )
    server = await kube.wait_pod("db-0", ready, "Ready")

    async def ready_in_slice() -> bool:
        sl = await kube.get("endpointslices", "db-emulated", SLICES)
        return any(e["conditions"]["ready"] for e in (sl or {}).get("endpoints") or [])

    await wait_for(ready_in_slice, what="db endpoint ready")
    svc = await kube.get("services", "db")
    assert svc is not None and svc["spec"]["clusterIP"] == "None"
    echo = ["python", "-c", "import sys; print('ADDR', sys.argv[1])", f"db.{NS}.svc:5000"]
    await kube.create("pods", pod("db-client", echo, restartPolicy="Never"))
    await kube.wait_log("db-client", f"ADDR {server['status']['podIP']}:5000")
