"""A URL prefix (as under JupyterHub) and scheduler TLS on its own port."""

from __future__ import annotations

import urllib.request

import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import basic, free_port, running_gateway
from tests.polling import wait_for


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tcp_port = free_port()
    with running_gateway(
        tmp_path_factory.mktemp("prefixed"),
        prefix="/services/dask-gateway",
        extra_config=(
            f'c.TraefikProxy.tcp_address = "127.0.0.1:{tcp_port}"\n'
            "c.LocalBackend.stopped_cluster_max_age = 2\n"
        ),
    ) as gw:
        gw.tcp_port = tcp_port
        yield gw


def test_prefixed_api_and_separate_scheduler_port(gateway):
    assert gateway.address.endswith("/services/dask-gateway")
    with Gateway(gateway.address, proxy_address=gateway.tcp_port, auth=BasicAuth("alice")) as gw:
        cluster = gw.new_cluster()
        assert cluster.scheduler_address == f"gateway://127.0.0.1:{gateway.tcp_port}/{cluster.name}"
        cluster.scale(1)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(1, timeout=60)
        assert client.submit(pow, 2, 10).result(timeout=60) == 1024
        client.close()
        url = cluster.dashboard_link
        assert url.startswith(gateway.address + "/clusters/")
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"Authorization": basic("alice")})
        ) as r:
            assert r.status == 200
        cluster.shutdown()


def test_routes_outside_the_prefix_are_not_served(gateway):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/api/health")
    assert info.value.code == 404


def test_stopped_clusters_are_purged_after_their_retention(gateway):
    status, body = gateway.request("POST", "/api/v1/clusters/", {}, user="paula")
    name = body["name"]
    workdir = gateway.workdir(name)
    assert workdir.exists()
    gateway.request("DELETE", f"/api/v1/clusters/{name}", user="paula")
    wait_for(
        lambda: gateway.request("GET", f"/api/v1/clusters/{name}", user="paula")[0] == 404,
        timeout=60,
        what="the stopped cluster to be purged",
    )
    assert not workdir.exists()
