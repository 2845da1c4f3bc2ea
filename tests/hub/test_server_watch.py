"""Clusters follow their owner's notebook server, against a real hub with real servers.

The hub spawns a trivial HTTP server per user; the gateway runs next to it as an
external service with JupyterHub auth and the scopes the watch needs.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from jhub_gateway import Gateway
from jhub_gateway.client import JupyterHubAuth
from tests.gatewaytools import GatewayProcess
from tests.hubtools import run_hub, trivial_spawner_config
from tests.polling import until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE = "dask-gateway"
ACCESS = f"access:services!service={SERVICE}"
GRACE = 8.0


GATEWAY_CONFIG = """
from jhub_gateway.options import Options, Bool
c.GatewayApp.cluster_options = Options(
    Bool("keep_after_server_stops", default=False, label="Keep after my server stops"),
    handler=lambda o: {{"keep_after_server_stops": o.keep_after_server_stops}},
)
c.GatewayApp.authenticator = "jupyterhub"
c.JupyterHubAuthenticator.api_url = {api_url!r}
c.JupyterHubAuthenticator.api_token = {api_token!r}
c.JupyterHubAuthenticator.service_name = {service!r}
c.JupyterHubAuthenticator.cache_ttl = 1
c.ServerWatch.grace_period = {grace}
c.ServerWatch.interval = 1
"""


class Stack:
    def __init__(self, hub, gateway: GatewayProcess, tmp):
        self.hub = hub
        self.gateway_process = gateway
        self.tmp = tmp

    async def gateway(self, user: str) -> Gateway:
        token = await self.hub.token_for(user, scopes=["self", ACCESS])
        return Gateway(self.gateway_process.address, auth=JupyterHubAuth(token), asynchronous=True)

    async def server(self, user: str, running: bool) -> None:
        method = "POST" if running else "DELETE"
        status, _ = await self.hub.api(method, f"/users/{user}/server")
        assert status in (201, 202, 204), status

        async def settled() -> bool:
            _, model = await self.hub.api("GET", f"/users/{user}")
            server = (model.get("servers") or {}).get("")
            if running:
                return bool(server and server.get("ready"))
            return not server

        await until(settled, 60, what=f"{user}'s server to be {'up' if running else 'gone'}")

    async def status_of(self, user: str, name: str) -> tuple[str, str]:
        _, model = await asyncio.to_thread(
            self.gateway_process.request,
            "GET",
            f"/api/v1/clusters/{name}",
            headers={"Authorization": f"token {await self.hub.token_for(user)}"},
        )
        return model["status"], model.get("reason", "")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("serverwatch")
    users = {"alice": {}, "bob": {}, "carol": {}}
    roles = [
        {"name": "user", "scopes": ["self", ACCESS]},
        {"name": "gateway", "scopes": ["list:users", "read:servers"], "services": [SERVICE]},
    ]
    extra = trivial_spawner_config(root)
    # the gateway's address is only known once GatewayProcess picked a port; hubs accept
    # a service without a url (external, API only)
    async with run_hub(
        root, services=[{"name": SERVICE}], users=users, roles=roles, extra_config=extra
    ) as hub:
        gw_root = root / "gateway"
        gw_root.mkdir()
        config = GATEWAY_CONFIG.format(
            api_url=hub.api_url, api_token=hub.service_token(SERVICE), service=SERVICE, grace=GRACE
        )
        gateway = GatewayProcess(gw_root, extra_config=config)
        await asyncio.to_thread(gateway.start)
        try:
            yield Stack(hub, gateway, root)
        finally:
            await asyncio.to_thread(gateway.kill_everything)


async def test_watch_reports_itself_on_with_the_scopes_it_needs(stack):
    await until(
        lambda: "server watch on" in stack.gateway_process.log_text(), 30, what="the watch to start"
    )


async def test_clusters_stop_with_their_owners_server_unless_kept(stack):
    for user in ("alice", "bob"):
        await stack.server(user, running=True)
    async with await stack.gateway("alice") as alice, await stack.gateway("bob") as bob:
        bound = await alice.submit()
        kept = await alice.submit(cluster_options={"keep_after_server_stops": True})
        bobs = await bob.submit()
        # bob's server goes away and comes back well within the grace period
        await stack.server("bob", running=False)
        await stack.server("bob", running=True)
        await stack.server("alice", running=False)

        async def alice_stopped() -> bool:
            return (await stack.status_of("alice", bound))[0] in ("STOPPING", "STOPPED")

        await until(alice_stopped, GRACE + 60, what="alice's cluster to stop with her server")
        status, reason = await stack.status_of("alice", bound)
        assert reason == "OwnerServerStopped"
        # bob's absence began before alice's and was shorter than the grace: kept
        assert (await stack.status_of("bob", bobs))[0] in ("PENDING", "RUNNING")
        assert (await stack.status_of("alice", kept))[0] in ("PENDING", "RUNNING")
        await alice.stop_cluster(kept)
        await bob.stop_cluster(bobs)


async def test_a_user_without_a_server_loses_clusters_after_the_grace(stack):
    # carol never started a server (as when a user is deleted): same rule
    async with await stack.gateway("carol") as carol:
        name = await carol.submit()

        async def stopped() -> bool:
            return (await stack.status_of("carol", name))[0] in ("STOPPING", "STOPPED")

        await until(stopped, GRACE + 60, what="carol's cluster to stop")
        assert (await stack.status_of("carol", name))[1] == "OwnerServerStopped"


async def test_hub_away_stops_nothing(stack):
    await stack.server("alice", running=True)
    async with await stack.gateway("alice") as alice:
        name = await alice.submit()
        gateway = stack.gateway_process
        mark = len(gateway.log_text())

        def rounds_while_away() -> int:
            return gateway.log_text()[mark:].count("hub not asked this round")

        # the hub goes away, and alice's server with it: the watch cannot tell that
        # from "the hub is down", so it must not act on it
        await stack.hub.stop()
        await until(
            lambda: rounds_while_away() >= GRACE + 3, 120, what="watch rounds with the hub away"
        )
        assert "cluster(s) of alice" not in gateway.log_text()[mark:]
        alive = gateway.processes_under(gateway.workdir(name))
        assert alive, "alice's cluster must keep running while the hub is away"
