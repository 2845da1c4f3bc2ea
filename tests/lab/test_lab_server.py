"""dask-labextension's REST routes in a real ``jupyter server``, backed by a real gateway.

No browser: the requests are the ones the sidebar sends (it polls
``GET dask/clusters`` every 5 s). One gateway (local backend, simple auth)
and one notebook server, whose user is alice, for the whole module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from jhub_gateway.client import BasicAuth, Gateway
from jhub_gateway.client.lab.ids import id_from_name, name_from_id
from tests.gatewaytools import running_gateway
from tests.lab.labtools import gateway_env, running_lab
from tests.polling import wait_for

USER = "alice"

# what dask-labextension 7.0.0 pastes for "inject client code"
INJECTED = 'from dask.distributed import Client\n\nclient = Client("{address}")\nclient'


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    (root / "gateway").mkdir()
    (root / "lab").mkdir()
    with running_gateway(root / "gateway") as gw:
        with running_lab(root / "lab", gateway_env(gw.address, USER)) as lab:
            lab.gateway = gw
            yield lab


def gateway_status(lab, name: str, user: str = USER) -> dict:
    status, body = lab.gateway.request("GET", f"/api/v1/clusters/{name}", user=user)
    assert status == 200, body
    return body


def listing(lab) -> dict[str, dict]:
    status, body, _ = lab.request("GET", "/dask/clusters")
    assert status == 200, body
    return {model["id"]: model for model in body}


def running_model(lab, cluster_id: str) -> dict:
    """The cluster's model once the listing shows it running (it has a dashboard link)."""
    return wait_for(
        lambda: (m := listing(lab).get(cluster_id)) and m["dashboard_link"] and m,
        90,
        what=f"{cluster_id} running in the listing",
    )


@pytest.fixture(scope="module")
def launched(stack):
    """A cluster launched with the sidebar's "+ NEW" (PUT), running."""
    status, model, _ = stack.request("PUT", "/dask/clusters")
    assert status == 200, model
    return running_model(stack, model["id"])


def test_a_cluster_created_from_a_notebook_is_listed_with_a_valid_id(stack):
    with Gateway(stack.gateway.address, auth=BasicAuth(USER)) as gw:
        name = gw.submit()
    with Gateway(stack.gateway.address, auth=BasicAuth("bob")) as others:
        foreign = others.submit()
        try:
            models = listing(stack)
            assert id_from_name(name) in models  # pending or running, it is there at once
            assert id_from_name(foreign) not in models  # bob's cluster is not alice's
            status, one, _ = stack.request("GET", f"/dask/clusters/{id_from_name(name)}")
            assert status == 200 and one["id"] == id_from_name(name)
        finally:
            others.stop_cluster(foreign)
            Gateway(stack.gateway.address, auth=BasicAuth(USER)).stop_cluster(name)


def test_put_launches_a_cluster_on_the_gateway(stack, launched):
    name = name_from_id(launched["id"])
    assert gateway_status(stack, name)["status"] == "RUNNING"
    assert launched["name"] == name
    assert launched["dashboard_link"] == f"{stack.gateway.address}/clusters/{name}/status"
    assert launched["workers"] == 0 and launched["memory"] == "0 B"


def test_scale_and_adapt_answer_200_and_the_listing_keeps_working(stack, launched):
    cluster_id, name = launched["id"], name_from_id(launched["id"])
    status, model, _ = stack.request("PATCH", f"/dask/clusters/{cluster_id}", {"workers": 1})
    assert status == 200, model
    assert gateway_status(stack, name)["workers"]["requested"] == 1
    scaled = wait_for(lambda: listing(stack)[cluster_id]["workers"] == 1 and listing(stack), 60)
    # cores and memory come from the listing: 1 worker of the default 1 core, 0.5 GiB
    assert scaled[cluster_id]["cores"] == 1 and scaled[cluster_id]["memory"] == "512.00 MiB"

    body = {"adapt": {"minimum": 1, "maximum": 2}}
    status, model, _ = stack.request("PATCH", f"/dask/clusters/{cluster_id}", body)
    assert status == 200, model
    assert model["adapt"] == {"minimum": 1, "maximum": 2}
    assert listing(stack)[cluster_id]["adapt"] == {"minimum": 1, "maximum": 2}


def test_adapt_bounds_shown_are_the_gateways_wherever_they_were_set(stack, launched):
    cluster_id, name = launched["id"], name_from_id(launched["id"])
    with Gateway(stack.gateway.address, auth=BasicAuth(USER)) as gw:
        gw.adapt_cluster(name, minimum=0, maximum=3)  # from a notebook, not the sidebar
        assert gateway_status(stack, name)["adaptive"] == {"minimum": 0, "maximum": 3}
        wait_for(
            lambda: listing(stack)[cluster_id].get("adapt") == {"minimum": 0, "maximum": 3},
            30,
            what="the notebook's bounds in the listing",
        )
        gw.scale_cluster(name, 1)  # a fixed count ends adaptive scaling
        wait_for(
            lambda: "adapt" not in listing(stack)[cluster_id],
            30,
            what="adapt gone from the listing",
        )
    assert gateway_status(stack, name)["adaptive"] is None


def test_bad_scaling_requests_are_precise_4xx(stack, launched):
    cluster_id = launched["id"]
    status, body, _ = stack.request("PATCH", f"/dask/clusters/{cluster_id}", {"workers": "x"})
    assert (status, body["reason"]) == (400, "invalid_count")
    status, body, _ = stack.request("PATCH", f"/dask/clusters/{cluster_id}", {"spam": 1})
    assert (status, body["reason"]) == (400, "invalid_scaling")
    unknown = id_from_name("0" * 32)
    status, body, _ = stack.request("PATCH", f"/dask/clusters/{unknown}", {"workers": 1})
    assert (status, body["reason"]) == (404, "not_found")
    status, body, _ = stack.request("DELETE", f"/dask/clusters/{unknown}")
    assert (status, body["reason"]) == (404, "not_found")


def test_the_dashboard_check_reports_the_dashboard_active(stack, launched):
    cluster_id, name = launched["id"], name_from_id(launched["id"])
    public = f"{stack.gateway.address}/clusters/{name}"
    # what the sidebar asks after a click on the cluster, and a pasted dashboard link
    for url in (f"dask/dashboard/{cluster_id}", f"{public}/status"):
        status, check, _ = stack.request("GET", "/dask/dashboard-check/" + quote(url, safe=""))
        assert status == 200, check
        assert check["isActive"] is True, check
        assert check["effectiveUrl"] == public
        assert "/individual-task-stream" in check["plots"].values()
    status, _, headers = stack.request(
        "GET", f"/dask/dashboard/{cluster_id}/individual-progress", follow=False
    )
    assert (status, headers["Location"]) == (302, f"{public}/individual-progress")
    # the sidebar reads a relative dashboard's plot listing from the notebook server
    status, plots, _ = stack.request("GET", f"/dask/dashboard/{cluster_id}/individual-plots.json")
    assert status == 200 and plots == check["plots"]


def test_injected_client_code_connects_through_the_gateway(stack, launched):
    code = INJECTED.format(address=launched["scheduler_address"])
    assert "Gateway().connect(" in code
    check = code + "\nassert client.submit(sum, [1, 2]).result(timeout=60) == 3\nclient.close()\n"
    done = subprocess.run(
        [sys.executable, "-c", check], env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(os.environ.get("LAB_SCREENSHOT_DIR") or "")


@pytest.mark.browser
def test_the_sidebar_lists_launches_and_opens_dashboards(stack, launched, tmp_path):
    from playwright.sync_api import sync_playwright

    name = name_from_id(launched["id"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            # the gateway's simple auth answers dashboards with a Basic challenge
            context = browser.new_context(
                viewport={"width": 1400, "height": 900},
                http_credentials={"username": USER, "password": ""},
            )
            page = context.new_page()
            page.set_default_timeout(120_000)  # JupyterLab is a lot of script on a busy machine
            page.goto(f"{stack.url}/lab?token={stack.token}", wait_until="domcontentloaded")
            page.click('li[data-id="dask-dashboard-launcher"]')
            items = page.locator(".dask-ClusterListingItem")
            items.filter(has_text=name).wait_for()
            before = items.count()

            page.click('.dask-DaskClusterManager [data-command="dask:launch-cluster"]')
            wait_for(lambda: items.count() == before + 1, 60, what="the new cluster listed")
            assert len(listing(stack)) == before + 1

            items.filter(has_text=name).locator(".dask-ClusterListingItem-title").click()
            plots = page.locator(".dask-DashboardListing-item button")
            plots.first.wait_for()
            wait_for(lambda: plots.first.is_enabled(), 30, what="active plot buttons")
            assert plots.count() > 5
            # the pane's dask/dashboard/<id>/... redirects to the gateway's public URL,
            # where the plot renders and connects its websocket
            public = f"{stack.gateway.address}/clusters/{name}/individual-task-stream"
            with (
                page.expect_console_message(lambda m: "rendered successfully" in m.text),
                page.expect_response(lambda r: r.url == public and r.status == 200),
            ):
                page.locator('.dask-DashboardListing-item button[value="Task Stream"]').click()
            shots = SHOTS if str(SHOTS) not in ("", ".") else tmp_path
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "lab-dask-sidebar.png"))
        finally:
            browser.close()
    # the cluster "+ NEW" made is stopped by the gateway's teardown


def test_delete_stops_the_cluster_on_the_gateway(stack, launched):
    cluster_id, name = launched["id"], name_from_id(launched["id"])
    status, _, _ = stack.request("DELETE", f"/dask/clusters/{cluster_id}")
    assert status == 204
    assert gateway_status(stack, name)["status"] in ("STOPPING", "STOPPED")
    assert cluster_id not in listing(stack)
