"""The sidebar's routes in a hub-spawned notebook server, with JupyterHub auth throughout.

A real JupyterHub runs the gateway as a managed service (``--auth jupyterhub``) and
spawns a real ``jupyterhub-singleuser`` (jupyter-server with JupyterLab and
dask-labextension) for alice, configured as a notebook image would be: the gateway
address, ``auth: jupyterhub``, nothing else. The extension talks to the gateway with
the server's own hub token (``JUPYTERHUB_API_TOKEN``); requests reach the notebook
server through the hub's proxy with alice's token.
"""

from __future__ import annotations

import sys
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio

from jhub_gateway.client import Gateway, JupyterHubAuth
from jhub_gateway.client.lab.ids import id_from_name, name_from_id
from tests.gatewaytools import free_port
from tests.hubtools import Hub, gateway_healthy, managed_service
from tests.lab.labtools import SHIPPED_ENTRY
from tests.polling import until

pytestmark = [pytest.mark.hub, pytest.mark.asyncio(loop_scope="module")]

SERVICE = "dask-gateway"
ACCESS = f"access:services!service={SERVICE}"

SPAWNER = """
import sys
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--ServerApp.root_dir={root}/notebooks", "--allow-root"]
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/home/{{username}}"
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
# the server's own token may use the gateway, as in our z2jh example
c.Spawner.server_token_scopes = [
    "users:activity!user", "access:servers!server", {access!r},
]
c.Spawner.environment = {environment!r}
"""


class Stack:
    def __init__(self, hub, gateway_port: int) -> None:
        self.hub = hub
        self.gateway_address = f"{hub.url}/services/{SERVICE}"
        self.proxy_address = f"gateway://127.0.0.1:{gateway_port}"
        self.tokens: dict[str, str] = {}

    async def token(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = await self.hub.token_for(user)
        return self.tokens[user]

    async def lab(self, method: str, path: str, body=None, user: str = "alice"):
        """``(status, body)`` of a request to ``user``'s notebook server, through the hub."""
        headers = {"Authorization": f"token {await self.token(user)}"}
        url = f"{self.hub.url}/user/{user}{path}"
        async with aiohttp.ClientSession() as s:
            async with s.request(method, url, json=body, headers=headers) as r:
                return r.status, await r.json(content_type=None)

    async def listing(self) -> dict[str, dict]:
        status, body = await self.lab("GET", "/dask/clusters")
        assert status == 200, body
        return {model["id"]: model for model in body}

    async def gateway(self, user: str) -> Gateway:
        return Gateway(
            self.gateway_address,
            proxy_address=self.proxy_address,
            auth=JupyterHubAuth(await self.token(user)),
            asynchronous=True,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("labhub")
    port = free_port()
    config_path = root / "config-path" / "jupyter_server_config.d"
    config_path.mkdir(parents=True)
    (config_path / SHIPPED_ENTRY.name).write_text(SHIPPED_ENTRY.read_text())
    (root / "notebooks").mkdir()
    hub_url_placeholder = "HUB_URL"
    environment = {
        "JUPYTER_CONFIG_PATH": str(root / "config-path"),
        "DASK_CONFIG": str(root / "dask"),
        # what our z2jh example presets in the notebook image
        "DASK_GATEWAY__ADDRESS": f"{hub_url_placeholder}/services/{SERVICE}",
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{port}",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }
    service = managed_service(SERVICE, port, root / "gateway-data", "--log-level", "DEBUG")
    users = {"alice": {}, "bob": {}}
    roles = [{"name": "user", "scopes": ["self", ACCESS]}]

    def extra(hub_url: str) -> str:
        env = {k: v.replace(hub_url_placeholder, hub_url) for k, v in environment.items()}
        return SPAWNER.format(python=sys.executable, root=root, access=ACCESS, environment=env)

    hub = Hub(root / "hub", services=[service], users=users, roles=roles)
    # the hub's URL is known once it picked its ports: the spawner's config follows it
    hub.config_path.write_text(hub.config_path.read_text() + extra(hub.url))
    try:
        await hub.start()
        st = Stack(hub, port)
        await until(lambda: gateway_healthy(st.gateway_address), 90, what="the managed gateway")
        status, _ = await hub.api("POST", "/users/alice/server")
        assert status in (201, 202), status

        async def ready() -> bool:
            _, model = await hub.api("GET", "/users/alice")
            server = (model.get("servers") or {}).get("")
            return bool(server and server.get("ready"))

        await until(ready, 150, what="alice's notebook server")
        yield st
    finally:
        await hub.close()


async def running_model(stack: Stack, cluster_id: str) -> dict:
    async def model() -> dict | None:
        found = (await stack.listing()).get(cluster_id)
        return found if found and found["dashboard_link"] else None

    return await until(model, 120, what=f"{cluster_id} running in the listing")


async def test_the_listing_shows_the_users_clusters_and_no_one_elses(stack):
    async with await stack.gateway("alice") as alice, await stack.gateway("bob") as bob:
        mine = await alice.submit()
        foreign = await bob.submit()
        try:
            models = await stack.listing()
            assert id_from_name(mine) in models
            assert id_from_name(foreign) not in models
        finally:
            await bob.stop_cluster(foreign)
            await alice.stop_cluster(mine)


async def test_launch_scale_adapt_and_stop_with_the_servers_hub_token(stack):
    status, model = await stack.lab("PUT", "/dask/clusters")
    assert status == 200, model
    cluster_id = model["id"]
    name = name_from_id(cluster_id)
    launched = await running_model(stack, cluster_id)
    # dashboards open in JupyterLab's panes through the hub's public URL
    public = f"{stack.gateway_address}/clusters/{name}"
    assert launched["dashboard_link"] == f"{public}/status"

    status, model = await stack.lab("PATCH", f"/dask/clusters/{cluster_id}", {"workers": 1})
    assert status == 200, model

    async def one_worker() -> bool:
        return (await stack.listing())[cluster_id]["workers"] == 1

    await until(one_worker, 90, what="one worker in the listing")
    body = {"adapt": {"minimum": 1, "maximum": 2}}
    status, model = await stack.lab("PATCH", f"/dask/clusters/{cluster_id}", body)
    assert status == 200 and model["adapt"] == {"minimum": 1, "maximum": 2}, model
    async with await stack.gateway("alice") as alice:
        report = await alice.get_cluster(name)
        assert report.status.name == "RUNNING"

        # the server-side dashboard check authenticates with the server's token
        url = quote(f"{public}/status", safe="")
        status, check = await stack.lab("GET", f"/dask/dashboard-check/{url}")
        assert status == 200 and check["isActive"] is True, check
        assert check["effectiveUrl"] == public

        status, _ = await stack.lab("DELETE", f"/dask/clusters/{cluster_id}")
        assert status == 204

        async def stopped() -> bool:
            return (await alice.get_cluster(name)).status.name in ("STOPPING", "STOPPED")

        await until(stopped, 60, what="the cluster stopped on the gateway")
    assert cluster_id not in await stack.listing()


async def test_another_users_token_does_not_reach_alices_sidebar(stack):
    status, _ = await stack.lab("GET", "/dask/clusters", user="alice")
    assert status == 200
    headers = {"Authorization": f"token {await stack.token('bob')}"}
    async with aiohttp.ClientSession() as s:
        url = f"{stack.hub.url}/user/alice/dask/clusters"
        async with s.get(url, headers=headers, allow_redirects=False) as r:
            assert r.status == 403


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.mark.browser
async def test_the_dashboard_pane_renders_with_the_hub_login(stack, tmp_path):
    """Chromium logs in to the hub, opens JupyterLab, and a plot pane renders from the
    gateway with nothing but the hub login (the gateway's OAuth with the hub)."""
    from playwright.async_api import async_playwright

    async with await stack.gateway("alice") as alice:
        name = await alice.submit()
        await running_model(stack, id_from_name(name))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(120_000)  # JupyterLab is a lot of script
                await page.goto(f"{stack.hub.url}/hub/login?next=/user/alice/lab")
                await page.fill("#username_input", "alice")
                await page.fill("#password_input", "any")
                await page.click("#login_submit")
                await page.wait_for_url("**/user/alice/lab**")
                await page.click('li[data-id="dask-dashboard-launcher"]')
                item = page.locator(".dask-ClusterListingItem").filter(has_text=name)
                await item.locator(".dask-ClusterListingItem-title").click()
                plots = page.locator(".dask-DashboardListing-item button")
                await plots.first.wait_for()
                await until(plots.first.is_enabled, 30, what="active plot buttons")
                public = f"{stack.gateway_address}/clusters/{name}/individual-task-stream"
                async with (
                    page.expect_console_message(lambda m: "rendered successfully" in m.text),
                    page.expect_response(lambda r: r.url == public and r.status == 200),
                ):
                    await page.locator(
                        '.dask-DashboardListing-item button[value="Task Stream"]'
                    ).click()
                await page.screenshot(path=str(tmp_path / "lab-hub-sidebar.png"))
            finally:
                await browser.close()
        await alice.stop_cluster(name)
