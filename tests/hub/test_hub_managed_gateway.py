"""The gateway as a hub-managed service of a real JupyterHub, end to end.

The hub starts and stops the service; notebook-style tokens reach it through the
hub's proxy (``/services/dask-gateway/``) and Traefik; scheduler TLS goes to Traefik.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import aiohttp
import dask_gateway
import psutil
import pytest
import pytest_asyncio
from dask_gateway.auth import JupyterHubAuth as UpstreamJupyterHubAuth

from jhub_gateway import Gateway
from jhub_gateway.client import GatewayAuthError, GatewayValueError, JupyterHubAuth
from tests.gatewaytools import free_port
from tests.hubtools import gateway_healthy, managed_service, run_hub
from tests.polling import until
from tests.promtools import sample, scrape

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE = "dask-gateway"
ACCESS = f"access:services!service={SERVICE}"

GATEWAY_CONFIG = """
from jhub_gateway.options import Options, Integer

def options_for(user):
    top = 4 if "big" in user.groups else 1
    return Options(
        Integer("worker_cores", default=1, min=1, max=top),
        handler=lambda o: {"worker_cores": o.worker_cores, "worker_memory": "512 M"},
    )

c.GatewayApp.cluster_options = options_for
c.JupyterHubAuthenticator.cache_ttl = 1
c.GatewayApp.session_max_age = 1
c.ServiceMetrics.token = "scrape-secret-for-tests"
"""
METRICS_BEARER = "scrape-secret-for-tests"


class Stack:
    def __init__(self, hub, gateway_port: int, data_dir: Path):
        self.hub = hub
        self.address = f"{hub.url}/services/{SERVICE}"
        self.proxy_address = f"gateway://127.0.0.1:{gateway_port}"
        self.data_dir = data_dir

    def gateway(self, token: str, upstream: bool = False):
        if upstream:
            return dask_gateway.Gateway(
                self.address,
                proxy_address=self.proxy_address,
                auth=UpstreamJupyterHubAuth(token),
                asynchronous=True,
            )
        return Gateway(
            self.address,
            proxy_address=self.proxy_address,
            auth=JupyterHubAuth(token),
            asynchronous=True,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubstack")
    port = free_port()
    config = root / "jhub_gateway_config.py"
    config.write_text(GATEWAY_CONFIG)
    data_dir = root / "gateway-data"
    service = managed_service(
        SERVICE, port, data_dir, "--config", str(config), "--log-level", "DEBUG"
    )
    users = {"alice": {}, "bob": {}, "root": {"admin": True}, "hercules": {"groups": ["big"]}}
    roles = [
        {"name": "user", "scopes": ["self", ACCESS]},
        {"name": "scraper", "scopes": ["read:metrics"], "services": ["prometheus"]},
    ]
    services = [service, {"name": "prometheus"}]
    async with run_hub(root, services=services, users=users, roles=roles) as hub:
        st = Stack(hub, port, data_dir)

        await until(lambda: gateway_healthy(st.address), 90, what="the hub-managed gateway")
        yield st


async def token(stack, user, scopes=None):
    return await stack.hub.token_for(user, scopes=scopes)


async def test_token_with_scope_create_scale_compute_stop(stack):
    async with stack.gateway(await token(stack, "alice", ["self", ACCESS])) as gw:
        cluster = await gw.new_cluster()
        await cluster.scale(2)
        client = cluster.get_client(set_as_default=False)
        await client
        await client.wait_for_workers(2, timeout=90)
        assert await client.submit(lambda x: x * 3, 14) == 42
        await client.close()
        await cluster.shutdown()
        report = await gw.get_cluster(cluster.name)
        assert report.status.name == "STOPPED"


async def test_upstream_client_with_jupyterhub_auth(stack):
    async with stack.gateway(await token(stack, "alice", ["self", ACCESS]), upstream=True) as gw:
        cluster = await gw.new_cluster()
        assert (await gw.list_clusters())[0].name == cluster.name
        await cluster.shutdown()


async def test_token_without_scope_is_forbidden(stack):
    async with stack.gateway(await token(stack, "alice", ["read:users:name!user=alice"])) as gw:
        with pytest.raises(GatewayAuthError, match="access:services"):
            await gw.list_clusters()


async def test_bogus_and_revoked_tokens_are_unauthorized(stack):
    async with stack.gateway("not-a-real-token") as gw:
        with pytest.raises(GatewayAuthError) as info:
            await gw.list_clusters()
        assert info.value.status == 401
    revoked = await token(stack, "bob", ["self", ACCESS])
    async with stack.gateway(revoked) as gw:
        assert await gw.list_clusters() == []
        await stack.hub.revoke(revoked)

        async def refused():
            try:
                await gw.list_clusters()
            except GatewayAuthError as exc:
                return exc.status == 401
            return False

        await until(refused, 30, what="the revoked token to be refused")


async def test_users_see_only_their_own_clusters_admins_see_all(stack):
    async with stack.gateway(await token(stack, "alice", ["self", ACCESS])) as alice:
        cluster = await alice.new_cluster()
        async with stack.gateway(await token(stack, "bob", ["self", ACCESS])) as bob:
            assert await bob.list_clusters() == []
            with pytest.raises(GatewayAuthError):
                await bob.scale_cluster(cluster.name, 1)
        root_token = await token(stack, "root", ["self", ACCESS])
        async with aiohttp.ClientSession(headers={"Authorization": f"token {root_token}"}) as s:
            async with s.get(f"{stack.address}/api/v1/users/me") as r:
                me = await r.json()
            assert me["admin"] is True and me["name"] == "root"
            async with s.get(f"{stack.address}/api/v1/admin/clusters/") as r:
                assert cluster.name in await r.json()
        await cluster.shutdown()


async def test_options_depend_on_groups(stack):
    async with stack.gateway(await token(stack, "hercules", ["self", ACCESS])) as gw:
        spec = await gw.cluster_options()
        assert spec.worker_cores == 1
        name = await gw.submit(cluster_options={"worker_cores": 4})
        await gw.stop_cluster(name)
    async with stack.gateway(await token(stack, "alice", ["self", ACCESS])) as gw:
        with pytest.raises(GatewayValueError, match="worker_cores"):
            await gw.submit(cluster_options={"worker_cores": 4})


async def test_hub_stops_the_managed_service_gracefully(tmp_path):
    port = free_port()
    data_dir = tmp_path / "gw"
    service = managed_service(SERVICE, port, data_dir)
    async with run_hub(tmp_path, services=[service]) as hub:
        await until(
            lambda: gateway_healthy(f"{hub.url}/services/{SERVICE}"), 90, what="managed service"
        )
        (service_proc,) = [
            p
            for p in psutil.process_iter(["cmdline"])
            if str(data_dir) in (p.info["cmdline"] or [])
        ]
        await hub.stop()
        assert not service_proc.is_running()
    # the hub waited for the service's own SIGTERM handling, not for a kill timeout (33 s)
    stamps = {}
    for line in hub.log_tail(400).splitlines():
        for key in ("Cleaning up 1 services", "Cleaning up single-user servers"):
            if key in line:
                stamps[key] = datetime.strptime(line.split()[2], "%H:%M:%S.%f")
    waited = stamps["Cleaning up single-user servers"] - stamps["Cleaning up 1 services"]
    assert waited.total_seconds() < 10


@pytest.mark.browser
async def test_browser_login_reaches_the_service_page_and_dashboard(stack, tmp_path):
    """Real Chromium: hub login -> OAuth to the service -> its page -> an authenticated dashboard."""
    from playwright.async_api import async_playwright

    async with stack.gateway(await token(stack, "alice", ["self", ACCESS])) as gw:
        cluster = await gw.new_cluster()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            try:
                page = await browser.new_page()
                await page.goto(f"{stack.address}/")
                await page.wait_for_url("**/hub/login**")
                await page.fill("#username_input", "alice")
                await page.fill("#password_input", "any")
                await page.click("#login_submit")
                await page.wait_for_url(f"{stack.address}/**")
                assert "alice" in await page.inner_text("#user")
                assert cluster.name in await page.content()
                await page.screenshot(path=str(tmp_path / "service-page.png"))
                response = await page.goto(f"{stack.address}/clusters/{cluster.name}/status")
                assert response is not None and response.status == 200
                # a browser without a hub session is sent to the hub login, not shown the dashboard
                other = await browser.new_page()
                await other.goto(f"{stack.address}/clusters/{cluster.name}/status")
                await other.wait_for_url("**/hub/login**")
                # another hub user is refused the dashboard
                await other.fill("#username_input", "bob")
                await other.fill("#password_input", "any")
                await other.click("#login_submit")
                await other.wait_for_url(f"{stack.address}/**")
                response = await other.goto(f"{stack.address}/clusters/{cluster.name}/status")
                assert response is not None and response.status == 403
            finally:
                await browser.close()
        await cluster.shutdown()


async def test_metrics_need_the_read_metrics_scope_or_the_bearer_token(stack):
    url = f"{stack.address}/metrics"
    alice = await token(stack, "alice", ["self", ACCESS])
    async with aiohttp.ClientSession() as s:
        async with s.get(url, allow_redirects=False) as r:
            assert r.status == 401
            assert (await r.json())["error"] == "unauthorized"
        async with s.get(url, headers={"Authorization": f"token {alice}"}) as r:
            assert r.status == 403
            assert (await r.json())["error"] == "missing_scope"
        async with s.get(url, headers={"Authorization": "Bearer wrong-secret"}) as r:
            assert r.status in (401, 403)
        async with s.get(url, headers={"Authorization": f"Bearer {METRICS_BEARER}"}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")


async def test_metrics_count_a_cluster_lifecycle(stack):
    scraper = {"Authorization": f"token {stack.hub.service_token('prometheus')}"}
    before = await scrape(f"{stack.address}/metrics", scraper)
    async with stack.gateway(await token(stack, "alice", ["self", ACCESS])) as gw:
        cluster = await gw.new_cluster()
        await cluster.scale(1)
        running = await scrape(f"{stack.address}/metrics", scraper)
        assert sample(running, "jhub_gateway_clusters", state="running") >= 1
        assert sample(running, "jhub_gateway_active_workers") >= 1
        assert sample(running, "jhub_gateway_active_cores") >= 2  # scheduler + one worker
        await cluster.shutdown()
    after = await scrape(f"{stack.address}/metrics", scraper)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("jhub_gateway_cluster_starts_total", outcome="running", reason="Started") == 1
    assert delta("jhub_gateway_cluster_start_duration_seconds_count") == 1
    assert delta("jhub_gateway_cluster_start_duration_seconds_sum") > 0
    assert (
        delta("jhub_gateway_clusters", state="stopped") >= 1
    )  # earlier tests may finish stopping too
    created = dict(handler="ClustersHandler", method="POST", code="201")
    assert delta("jhub_gateway_http_requests_total", **created) == 1
    # the scraper's own token and alice's were looked up at the hub at least once each
    assert sample(after, "jhub_gateway_hub_auth_cache_total", result="miss") >= 2
    assert sample(after, "jhub_gateway_hub_request_duration_seconds_count", code="200") >= 2
