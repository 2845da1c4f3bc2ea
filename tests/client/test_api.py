"""The HTTP API against the fake gateway: auth flows, error mapping, payloads.

The same errors from the real service: ``test_real_service.py``.
"""

from __future__ import annotations

import aiohttp
import pytest

from jhub_gateway.client import (
    BasicAuth,
    ClusterStatus,
    Gateway,
    GatewayAuthError,
    GatewayClusterError,
    GatewayServerError,
    GatewayValueError,
    GatewayWarning,
    JupyterHubAuth,
)
from jhub_gateway.client.errors import error_for_status, parse_error_body


@pytest.fixture
async def gw(fake):
    async with Gateway(fake.address, auth=BasicAuth("alice", "pw"), asynchronous=True) as g:
        yield g


async def test_basic_challenge_once_then_cookie(fake, gw):
    assert await gw.list_clusters() == []
    await gw.list_clusters()
    await gw.cluster_options()
    log = fake.log
    assert [e["auth"].split(" ")[0] for e in log[:2]] == ["", "Basic"]
    # After the challenge, the session cookie alone authenticates.
    assert all(e["auth"] == "" and e["cookie"] for e in log[2:])
    assert len(log) == 4


async def test_wrong_password_is_auth_error_with_server_message(fake):
    async with Gateway(fake.address, auth=BasicAuth("alice", "bad"), asynchronous=True) as g:
        with pytest.raises(GatewayAuthError, match="wrong user name or password") as info:
            await g.list_clusters()
    assert isinstance(info.value, PermissionError)
    assert info.value.status == 401 and info.value.reason == "unauthorized"


async def test_jupyterhub_token_sent_up_front(fake):
    async with Gateway(fake.address, auth=JupyterHubAuth("hubtoken"), asynchronous=True) as g:
        await g.list_clusters()
        await g.list_clusters()
    assert fake.log[0]["auth"] == "jupyterhub hubtoken"
    assert fake.log[1]["auth"] == "" and fake.log[1]["cookie"]
    assert len(fake.log) == 2  # no 401 round trip


async def test_bad_hub_token_is_auth_error_without_retry(fake):
    async with Gateway(fake.address, auth=JupyterHubAuth("wrong"), asynchronous=True) as g:
        with pytest.raises(GatewayAuthError):
            await g.get_cluster("x")
    assert len(fake.log) == 1


async def test_submit_list_report_and_stop(fake, gw):
    opts = await gw.cluster_options()
    opts.worker_cores = 2
    name = await gw.submit(opts, image="custom")
    cluster = fake.clusters[name]
    assert cluster.options["worker_cores"] == 2 and cluster.options["image"] == "custom"
    fake.add_cluster("other", owner="bob")

    reports = await gw.list_clusters()
    assert [r.name for r in reports] == [name]
    report = reports[0]
    assert report.status is ClusterStatus.PENDING
    assert report.scheduler_address is None and report.security is None
    assert report.dashboard_link is None and report.stop_time is None

    cluster.status, cluster.reason = "RUNNING", "SchedulerReady"
    report = await gw.get_cluster(name)
    assert report.scheduler_address == f"gateway://127.0.0.1:{fake.port}/{name}"
    assert report.dashboard_link == f"{fake.address}/clusters/{name}/status"
    assert report.tls_cert == fake.cert[0] and report.security is not None
    assert report.reason == "SchedulerReady"

    await gw.stop_cluster(name)
    assert await gw.list_clusters() == []
    stopped = await gw.list_clusters(status=["stopped", ClusterStatus.FAILED])
    assert [r.status for r in stopped] == [ClusterStatus.STOPPED]
    assert fake.log[-1]["path"] == "/api/v1/clusters/"


async def test_submit_with_plain_dict_and_config_defaults(fake, gw):
    import dask

    with dask.config.set({"gateway.cluster.options": {"profile": "large"}}):
        name = await gw.submit(debug=True)
        opts = await gw.cluster_options()
        raw = await gw.cluster_options(use_local_defaults=False)
    assert fake.clusters[name].options == {"profile": "large", "debug": True}
    assert opts.profile == "large" and raw.profile == "small"
    name2 = await gw.submit({"worker_cores": 3})
    assert fake.clusters[name2].options == {"worker_cores": 3}
    with pytest.raises(TypeError):
        await gw.submit(["not", "a", "mapping"])


async def test_error_mapping(fake, gw):
    with pytest.raises(GatewayValueError, match="no cluster named 'missing'") as info:
        await gw.get_cluster("missing")
    assert isinstance(info.value, ValueError) and info.value.status == 404
    assert info.value.reason == "cluster_not_found"

    with pytest.raises(GatewayValueError, match="unknown cluster options") as info:
        await gw.submit(bogus=1)
    assert info.value.status == 422

    with pytest.raises(ValueError):
        await gw.list_clusters(status="sleeping")  # rejected client-side

    fake.add_cluster("pending")
    with pytest.raises(GatewayClusterError, match="is PENDING, not RUNNING") as info:
        await gw.scale_cluster("pending", 2)
    assert (info.value.status, info.value.reason) == (409, "not_running")

    with pytest.raises(GatewayServerError, match="unexpected error") as info:
        await gw.submit(image="explode")
    assert (info.value.status, info.value.reason) == (500, "internal_error")

    fake.add_cluster("bobs", owner="bob")
    with pytest.raises(GatewayAuthError, match="belongs to another user") as info:
        await gw.stop_cluster("nonexistent-is-fine")  # 204 even when unknown
        await gw.scale_cluster("bobs", 1)
    assert info.value.status == 403

    # Statuses without a mapping surface as aiohttp errors, as upstream.
    with pytest.raises(aiohttp.ClientResponseError) as info:
        await gw.get_cluster("teapot")
    assert info.value.status == 418


def test_error_bodies_from_both_servers():
    assert parse_error_body('{"error": "not_found", "message": "no such cluster"}') == (
        "not_found",
        "no such cluster",
    )
    assert parse_error_body('{"error": "Cluster does not exist"}') == (
        None,
        "Cluster does not exist",
    )
    assert parse_error_body("<html>Bad Gateway</html>") == (None, "<html>Bad Gateway</html>")
    exc = error_for_status(503, "", "http://x/api")
    assert isinstance(exc, GatewayServerError) and "503" in str(exc)
    assert error_for_status(418, "{}") is None


async def test_scale_adapt_and_clamp_warning(fake, gw):
    fake.add_cluster("run", status="RUNNING")
    await gw.scale_cluster("run", 3)
    await gw.adapt_cluster("run", minimum=1, maximum=4)
    with pytest.warns(GatewayWarning, match="clamped to 5"):
        await gw.scale_cluster("run", 10)
    with pytest.raises(GatewayValueError, match="count must be a non-negative integer"):
        await gw.scale_cluster("run", -1)


async def test_versions(gw):
    from jhub_gateway import __version__

    assert await gw.get_versions() == {
        "server": {"version": "fake-1.0"},
        "client": {"version": __version__},
    }
