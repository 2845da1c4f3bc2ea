"""Idle clusters stop by the service's rule, whatever the cluster itself is set to."""

from __future__ import annotations

import time

import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import running_gateway
from tests.polling import wait_for

EXTRA_CONFIG = """
from jhub_gateway.options import Options, Float
c.GatewayApp.cluster_options = Options(
    Float("idle_timeout", default=0, min=0, max=3600),
    handler=lambda o: {"idle_timeout": o.idle_timeout, "worker_memory": "512 M"},
)
# the operator's bound: 8 s idle at most, even for a cluster set to "never" (0)
c.IdlePolicy.max_idle_timeout = 8
c.IdlePolicy.group_max_idle_timeout = {}
c.LocalBackend.heartbeat_period = 1
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("idle"), extra_config=EXTRA_CONFIG) as gw:
        yield gw


def _status(gateway, name, user):
    return gateway.request("GET", f"/api/v1/clusters/{name}", user=user)[1]


def test_the_operators_bound_stops_a_cluster_set_to_never_idle_out(gateway):
    with Gateway(gateway.address, auth=BasicAuth("erin")) as gw:
        cluster = gw.new_cluster(idle_timeout=0)
        client = cluster.get_client(set_as_default=False)
        # no workers: the task waits, and a waiting task is work
        waiting = client.submit(sum, [1, 2], key="waiting-task")
        started = time.monotonic()
        wait_for(lambda: time.monotonic() - started > 10, 20, what="longer than the bound")
        assert _status(gateway, cluster.name, "erin")["status"] == "RUNNING"
        waiting.cancel()
        client.close()
        wait_for(
            lambda: _status(gateway, cluster.name, "erin")["status"] == "STOPPED",
            60,
            what="the idle stop",
        )
        report = _status(gateway, cluster.name, "erin")
        assert report["reason"] == "IdleTimeout"
        assert "idle timeout 8 s" in report["message"]
        cluster.close(shutdown=False)
