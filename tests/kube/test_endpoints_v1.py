"""v1 Endpoints follow a Service's EndpointSlices (as kube-controller-manager keeps them)."""

from __future__ import annotations

import pytest

from jhub_gateway.kube.client import SERVICES, KubeClient, NotFound, Resource
from tests.kube.apiserver.endpoints_v1 import desired_endpoints
from tests.polling import until

pytestmark = pytest.mark.kube

ENDPOINTS = Resource("", "v1", "endpoints")
SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
NS = "default"


def _service(name: str, selector: dict[str, str] | None = None) -> dict:
    spec = {"ports": [{"name": "comm", "port": 8786}]}
    if selector is not None:
        spec["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "dask-scheduler"}},
        "spec": spec,
    }


def _slice(service: str, *endpoints: tuple[str, bool]) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-emulated",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "comm", "port": 8786, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready, "terminating": False}}
            for ip, ready in endpoints
        ],
    }


def test_ready_and_not_ready_addresses_go_to_their_lists() -> None:
    service = {**_service("s", {"a": "b"}), "metadata": {"name": "s", "namespace": "n"}}
    ep = desired_endpoints(service, [_slice("s", ("10.0.0.2", False), ("10.0.0.1", True))])
    assert ep["subsets"] == [
        {
            "addresses": [{"ip": "10.0.0.1"}],
            "notReadyAddresses": [{"ip": "10.0.0.2"}],
            "ports": [{"name": "comm", "port": 8786, "protocol": "TCP"}],
        }
    ]
    assert desired_endpoints(service, [])["subsets"] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_endpoints_follow_slices_and_go_with_their_service(kube_emulator) -> None:
    async with await KubeClient.connect(kube_emulator.kubeconfig) as client:
        await client.create(SERVICES, _service("sched", {"app": "x"}), NS)
        await client.create(SERVICES, _service("manual"), NS)  # no selector: not ours

        async def endpoints(name: str) -> dict | None:
            try:
                return await client.get(ENDPOINTS, name, NS)
            except NotFound:
                return None

        ep = await until(lambda: endpoints("sched"), what="Endpoints of sched")
        assert ep["subsets"] == [] and ep["metadata"]["labels"] == {
            "app.kubernetes.io/component": "dask-scheduler"
        }
        await client.create(SLICES, _slice("sched", ("127.1.0.9", False)), NS)

        async def subsets() -> list:
            return ((await endpoints("sched")) or {}).get("subsets") or []

        await until(lambda: _has(subsets, "notReadyAddresses"), what="a not-ready address")
        await client.patch(
            SLICES,
            "sched-emulated",
            {"endpoints": [{"addresses": ["127.1.0.9"], "conditions": {"ready": True}}]},
            NS,
        )
        await until(lambda: _has(subsets, "addresses"), what="the address to become ready")
        assert "notReadyAddresses" not in (await subsets())[0]
        assert await endpoints("manual") is None
        await client.delete(SERVICES, "sched", NS)
        await until(lambda: _gone(endpoints), what="the Endpoints to go with the Service")


async def _has(subsets, field: str) -> bool:
    found = await subsets()
    return bool(found and found[0].get(field))


async def _gone(endpoints) -> bool:
    return await endpoints("sched") is None
