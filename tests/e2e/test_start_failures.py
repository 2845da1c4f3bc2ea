"""Schedulers that crash or hang at start: the cluster FAILS with a reason, nothing lingers."""

from __future__ import annotations

import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth, GatewayClusterError
from tests.gatewaytools import running_gateway
from tests.polling import wait_for

EXTRA_CONFIG = """
import sys
from jhub_gateway.options import Options, Select

COMMANDS = {
    "normal": ["dask", "scheduler"],
    # prints a reason and exits before listening
    "crash": [sys.executable, "-c", "import sys; print('no GPU found, giving up'); sys.exit(3)"],
    # never listens, never heartbeats
    "hang": [sys.executable, "-c", "import time; time.sleep(600)"],
}
c.GatewayApp.cluster_options = Options(
    Select("mode", ["normal", "crash", "hang"]),
    handler=lambda o: {"scheduler_cmd": COMMANDS[o.mode], "scheduler_start_timeout": 3},
)
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("startfail"), extra_config=EXTRA_CONFIG) as gw:
        yield gw


def _failed(gateway, name):
    status, body = gateway.request("GET", f"/api/v1/clusters/{name}", user="alice")
    return body if body["status"] == "FAILED" else None


def test_crashing_scheduler_fails_with_its_last_words(gateway):
    status, body = gateway.request(
        "POST", "/api/v1/clusters/", {"cluster_options": {"mode": "crash"}}, user="alice"
    )
    assert status == 201
    report = wait_for(lambda: _failed(gateway, body["name"]), what="FAILED")
    assert report["reason"] == "SchedulerExited"
    assert "code 3" in report["message"] and "no GPU found" in report["message"]
    assert gateway.cluster_processes() == []


def test_hanging_scheduler_times_out_and_is_killed(gateway):
    status, body = gateway.request(
        "POST", "/api/v1/clusters/", {"cluster_options": {"mode": "hang"}}, user="alice"
    )
    report = wait_for(lambda: _failed(gateway, body["name"]), timeout=60, what="start timeout")
    assert report["reason"] == "SchedulerStartTimeout" and "3 s" in report["message"]
    wait_for(lambda: gateway.cluster_processes() == [], what="the hung scheduler to be killed")


def test_client_start_reports_the_failure_reason(gateway):
    with Gateway(gateway.address, auth=BasicAuth("bob")) as gw:
        with pytest.raises(GatewayClusterError, match="SchedulerExited"):
            gw.new_cluster(mode="crash")
