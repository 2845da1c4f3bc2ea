"""Clusters follow their owner's notebook server on the Kubernetes path.

A real JupyterHub (its spawner runs a trivial HTTP server per user) and the
emulator stack (kubelet, Traefik, controller, two api replicas with the kubernetes
backend and JupyterHub auth, the scopes the watch needs). When alice's server
stops, her DaskCluster is stopped with reason ``OwnerServerStopped`` after the
grace period and its pods go; bob, whose server runs, keeps his.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from tests.hubtools import run_hub, trivial_spawner_config
from tests.polling import until

from .stack import Stack, http

pytestmark = [pytest.mark.kube, pytest.mark.hub, pytest.mark.asyncio(loop_scope="module")]

SERVICE = "dask-gateway"
ACCESS = f"access:services!service={SERVICE}"
GRACE = 6.0


API_CONFIG = """
c.GatewayApp.authenticator = "jupyterhub"
c.JupyterHubAuthenticator.api_url = {api_url!r}
c.JupyterHubAuthenticator.api_token = {api_token!r}
c.JupyterHubAuthenticator.service_name = {service!r}
c.ServerWatch.grace_period = {grace}
c.ServerWatch.interval = 1
"""


class HubStack:
    def __init__(self, hub, kube: Stack) -> None:
        self.hub = hub
        self.kube = kube

    async def request(self, user: str, method: str, path: str, body=None) -> tuple[int, dict]:
        token = await self.hub.token_for(user, scopes=["self", ACCESS])
        headers = {"Authorization": f"token {token}"}
        return await asyncio.to_thread(http, self.kube.address + path, method, body, None, headers)

    async def server(self, user: str, running: bool) -> None:
        status, _ = await self.hub.api("POST" if running else "DELETE", f"/users/{user}/server")
        assert status in (201, 202, 204), status

        async def settled() -> bool:
            _, model = await self.hub.api("GET", f"/users/{user}")
            server = (model.get("servers") or {}).get("")
            return bool(server and server.get("ready")) if running else not server

        await until(settled, 60, what=f"{user}'s server to be {'up' if running else 'gone'}")

    async def cluster(self, user: str, name: str) -> dict:
        status, model = await self.request(user, "GET", f"/api/v1/clusters/{name}")
        assert status == 200, model
        return model


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube-serverwatch")
    roles = [
        {"name": "user", "scopes": ["self", ACCESS]},
        {"name": "gateway", "scopes": ["list:users", "read:servers"], "services": [SERVICE]},
    ]
    extra = trivial_spawner_config(root)
    async with run_hub(
        root, services=[{"name": SERVICE}], users=["alice", "bob"], roles=roles, extra_config=extra
    ) as hub:
        config = API_CONFIG.format(
            api_url=hub.api_url, api_token=hub.service_token(SERVICE), service=SERVICE, grace=GRACE
        )
        kube = Stack(root / "kube", api_config=config)
        (root / "kube").mkdir()
        try:
            await asyncio.to_thread(kube.start)
            yield HubStack(hub, kube)
        finally:
            await asyncio.to_thread(kube.stop)


async def test_both_replicas_watch_with_the_scopes_they_need(stack):
    for replica in stack.kube.replicas:
        await until(
            lambda r=replica: "server watch on" in r.proc.text(), 30, what="the watch to start"
        )


async def test_a_cluster_stops_with_its_owners_server_after_the_grace(stack):
    for user in ("alice", "bob"):
        await stack.server(user, running=True)
    names = {}
    for user in ("alice", "bob"):
        status, body = await stack.request(user, "POST", "/api/v1/clusters/", {})
        assert status == 201, body
        names[user] = body["name"]
    for user, name in names.items():

        async def running(user=user, name=name) -> bool:
            return (await stack.cluster(user, name))["status"] == "RUNNING"

        await until(running, 120, what=f"{user}'s cluster running")
    assert await asyncio.to_thread(stack.kube.pods, names["alice"], "dask-scheduler")

    stopped_at = asyncio.get_running_loop().time()
    await stack.server("alice", running=False)

    async def alice_stopped() -> bool:
        return (await stack.cluster("alice", names["alice"]))["status"] in ("STOPPING", "STOPPED")

    await until(alice_stopped, GRACE + 60, what="alice's cluster to stop with her server")
    assert asyncio.get_running_loop().time() - stopped_at >= GRACE
    model = await stack.cluster("alice", names["alice"])
    assert model["reason"] == "OwnerServerStopped", model
    assert "JupyterHub server stopped" in model["message"]
    # the kube backend carried it out: the DaskCluster is inactive and its pods go
    spec = (await asyncio.to_thread(stack.kube.daskcluster, names["alice"]))["spec"]
    assert spec["active"] is False

    async def pods_gone() -> bool:
        return not await asyncio.to_thread(stack.kube.pods, names["alice"], "dask-scheduler")

    await until(pods_gone, 60, what="alice's scheduler pod to go")
    # bob's server runs: his cluster is untouched
    assert (await stack.cluster("bob", names["bob"]))["status"] == "RUNNING"
    status, _ = await stack.request("bob", "DELETE", f"/api/v1/clusters/{names['bob']}")
    assert status in (200, 204)
