"""The pages in real headless Chromium, through a real hub's login and proxy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_asyncio

from tests.pages.stack import running_stack
from tests.polling import until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.browser]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    from playwright.async_api import async_playwright

    root = tmp_path_factory.mktemp("pagesbrowser")
    async with running_stack(root) as stack, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            stack.browser = browser
            stack.console_errors = []
            stack.shots = Path(os.environ.get("PAGES_SCREENSHOT_DIR") or root / "screenshots")
            stack.shots.mkdir(parents=True, exist_ok=True)
            yield stack
        finally:
            await browser.close()


@pytest.fixture(autouse=True)
def no_script_or_csp_errors(env):
    """Every page runs without script errors or Content-Security-Policy violations."""
    env.console_errors.clear()
    yield
    ours = [e for e in env.console_errors if "Failed to load resource" not in e]
    assert ours == []


async def login(env, user: str, url: str):
    """A fresh browser context logged in as ``user`` through the hub, on ``url``."""
    context = await env.browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    page.on("console", lambda m: m.type == "error" and env.console_errors.append(m.text))
    page.on("pageerror", lambda exc: env.console_errors.append(str(exc)))
    await page.goto(url)
    await page.wait_for_url("**/hub/login**")
    await page.fill("#username_input", user)
    await page.fill("#password_input", "any")
    await page.click("#login_submit")
    return page


def card(page, name: str):
    return page.locator(f'article.cluster[data-name="{name}"]')


async def test_user_finds_the_service_creates_scales_and_stops_a_cluster(env):
    page = await login(env, "alice", f"{env.hub.url}/hub/home")
    await page.wait_for_url("**/hub/home")
    # the hub lists the service in its Services menu, and our template adds a navbar link
    services = page.locator("ul.dropdown-menu a", has_text="dask-gateway")
    assert await services.get_attribute("href") == "/services/dask-gateway/"
    await page.click("#dask-gateway-link")
    await page.wait_for_url(f"{env.address}/")
    assert "alice" in await page.inner_text("#user")
    await page.wait_for_selector('#live[data-state="live"]')
    await page.evaluate("window.notReloaded = true")

    # a value outside the spec: the server's reason, next to the field
    await page.fill("#opt-worker_cores", "9")
    await page.click("#create")
    error = page.locator("#opt-worker_cores-error")
    await error.filter(has_text="must be <= 2").wait_for()
    assert await page.locator("article.cluster").count() == 0

    await page.fill("#opt-worker_cores", "1")
    await page.click("#create")
    first = page.locator("article.cluster").first
    await first.wait_for()
    name = await first.get_attribute("data-name")
    assert await error.inner_text() == ""
    await page.locator(f'article.cluster[data-name="{name}"][data-status="RUNNING"]').wait_for(
        timeout=60_000
    )
    await page.fill(f"#scale-{name}", "1")
    await card(page, name).get_by_role("button", name="Scale").click()
    await card(page, name).locator(".workers", has_text="1 / 1").wait_for(timeout=60_000)
    assert f'Gateway().connect("{name}").get_client()' in await page.inner_text("#snippet")
    await page.screenshot(path=str(env.shots / "my-clusters.png"), full_page=True)

    href = await card(page, name).locator("a.dashboard").get_attribute("href")
    dashboard = await page.context.new_page()
    response = await dashboard.goto(env.hub.url + href)
    assert response is not None and response.status == 200
    await dashboard.close()

    await page.get_by_role("button", name=f"Stop {name}").click()
    await card(page, name).wait_for(state="detached", timeout=60_000)
    assert await page.evaluate("window.notReloaded") is True
    assert await env.state("alice", name) in (None, "STOPPING", "STOPPED")
    await page.context.close()


async def test_a_user_sees_only_their_clusters_and_new_ones_live(env):
    page = await login(env, "alice", f"{env.address}/")
    await page.wait_for_url(f"{env.address}/")
    await page.wait_for_selector('#live[data-state="live"]')
    await page.evaluate("window.notReloaded = true")
    bobs = await env.create("bob")
    mine = await env.create("alice")
    await card(page, mine).wait_for(timeout=30_000)
    assert await card(page, bobs).count() == 0
    assert bobs not in await page.content()
    assert await page.evaluate("window.notReloaded") is True
    # usable at phone width: nothing wider than the screen, the controls still reachable
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert await card(page, mine).get_by_role("button", name=f"Stop {mine}").is_visible()
    await page.screenshot(path=str(env.shots / "my-clusters-phone.png"), full_page=True)
    # nor may alice open bob's dashboard, or stop his cluster through the API
    await until(lambda: _is(env, "bob", bobs, "RUNNING"), 60, what="bob's cluster running")
    response = await page.goto(f"{env.address}/clusters/{bobs}/status")
    assert response is not None and response.status == 403
    status, _ = await env.api("DELETE", f"/api/v1/clusters/{bobs}", "alice")
    assert status == 403
    await page.context.close()


async def _is(env, user, name, state):
    return await env.state(user, name) == state


async def test_non_admin_gets_403_on_all_clusters(env):
    page = await login(env, "bob", f"{env.address}/admin")
    await page.wait_for_url(f"{env.address}/admin")  # back from the hub login, refused
    response = await page.goto(f"{env.address}/admin")
    assert response is not None and response.status == 403
    assert "hub admins" in await page.inner_text("#error-message")
    assert await page.locator("#nav-admin").count() == 0
    await page.context.close()


async def test_admin_reaches_all_clusters_from_the_hub_and_stops_one_live(env):
    await env.stop_all()
    alices = await env.create("alice")
    bobs = await env.create("bob")
    owner = await login(env, "alice", f"{env.address}/")
    await owner.wait_for_url(f"{env.address}/")
    await card(owner, alices).wait_for()

    admin = await login(env, "root", f"{env.hub.url}/hub/admin")
    await admin.wait_for_url("**/hub/admin**")
    await admin.click("#dask-gateway-admin-page")
    await admin.wait_for_url(f"{env.address}/admin")
    await admin.wait_for_selector('#live[data-state="live"]')
    for user in ("alice", "bob"):
        await admin.locator(f'#users tr[data-user="{user}"] td.clusters', has_text="1").wait_for()
    for name in (alices, bobs):
        await admin.locator(f'#all-clusters tr[data-name="{name}"]').wait_for()
    # the page shows what the API says
    _, api = await env.api("GET", "/api/v1/admin/overview", "root")
    shown = await admin.locator("#all-clusters tbody tr[data-name]").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert sorted(shown) == sorted(c["name"] for c in api["clusters"]) == sorted([alices, bobs])
    assert await admin.inner_text("#count") == f"({api['total']})"
    link = admin.locator('#users tr[data-user="bob"] a.hub-user')
    assert "/hub/admin" in await link.get_attribute("href")
    await admin.screenshot(path=str(env.shots / "all-clusters.png"), full_page=True)

    await admin.get_by_role("button", name=f"Stop {alices}").click()
    await admin.locator(f'#all-clusters tr[data-name="{alices}"]').wait_for(
        state="detached", timeout=60_000
    )
    # the owner's page follows without a reload
    await card(owner, alices).wait_for(state="detached", timeout=60_000)
    await admin.locator('#users tr[data-user="alice"]').wait_for(state="detached")
    assert await admin.locator(f'#all-clusters tr[data-name="{bobs}"]').count() == 1

    # filters: bob only, then stop all of bob's
    await admin.fill("#filter-user", "bob")
    await admin.get_by_role("button", name="Filter").click()
    await admin.wait_for_url("**/admin?user=bob")
    await admin.get_by_role("button", name="Stop all clusters of bob").click()
    await admin.locator(f'#all-clusters tr[data-name="{bobs}"]').wait_for(
        state="detached", timeout=60_000
    )
    await owner.context.close()
    await admin.context.close()
