"""LoadBalancer Services: an external loopback IP in status, NodePorts, kubectl's EXTERNAL-IP."""

from __future__ import annotations

import aiohttp
import pytest
import pytest_asyncio

from tests.kube.kubelet.fixtures import cluster  # noqa: F401
from tests.kube.kubelet.testing import Kube, pod, ready, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "kubelet-lb"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube(cluster):  # noqa: F811
    _, api, workdir = cluster
    k = Kube(api, workdir, NS)
    await k.ensure_namespace()
    return k


async def http_status(url: str) -> int | None:
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as resp:
                return resp.status
    except aiohttp.ClientError:
        return None


async def test_load_balancer_ip_forwards_to_endpoints(kube: Kube) -> None:
    cmd = ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
    probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    spec = {"ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}
    await kube.create("pods", pod("lb-web", cmd, labels={"app": "lb"}, container=spec))
    service = {
        "metadata": {"name": "front"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "lb"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
        },
    }
    await kube.create("services", service)
    await kube.wait_pod("lb-web", ready, "Ready")

    async def published() -> dict | None:
        svc = await kube.get("services", "front")
        ingress = ((svc or {}).get("status", {}).get("loadBalancer") or {}).get("ingress")
        return svc if ingress and svc and svc["spec"]["ports"][0].get("nodePort") else None

    svc = await wait_for(published, what="external IP and nodePort")
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert ip.startswith("127.4.")
    assert 30000 <= node_port <= 32767
    assert svc["spec"]["clusterIP"].startswith("127.2.")

    async def answers(url: str) -> bool:
        return await http_status(url) == 200

    await wait_for(lambda: answers(f"http://{ip}/"), what="response through the external IP")
    await wait_for(
        lambda: answers(f"http://127.0.0.1:{node_port}/"), what="response through the nodePort"
    )

    # The server's Table (what `kubectl get service` prints) shows EXTERNAL-IP.
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    async with aiohttp.ClientSession() as session:
        url = f"{kube.api.host}/api/v1/namespaces/{NS}/services/front"
        async with session.get(url, headers=accept) as resp:
            table = await resp.json()
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["External-IP"] == ip
    assert row["Port(s)"] == f"80:{node_port}/TCP"
    assert row["Type"] == "LoadBalancer"

    # Back to ClusterIP: the external address is withdrawn and stops answering.
    patch = [{"op": "replace", "path": "/spec/type", "value": "ClusterIP"}]
    await kube.api.request(
        "PATCH",
        f"/api/v1/namespaces/{NS}/services/front",
        body=patch,
        content_type="application/json-patch+json",
    )

    async def withdrawn() -> bool:
        svc = await kube.get("services", "front")
        return not ((svc or {}).get("status", {}).get("loadBalancer") or {}).get("ingress")

    await wait_for(withdrawn, what="external IP removed from status")
    await wait_for(lambda: _refused(f"http://{ip}/"), what="external IP no longer listening")


async def _refused(url: str) -> bool:
    return await http_status(url) is None
