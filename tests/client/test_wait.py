"""Waiting for a start: progress output, failure reasons, the overall timeout."""

from __future__ import annotations

import logging

import dask
import pytest

from jhub_gateway.client import BasicAuth, Gateway, GatewayClusterError

# the Kubernetes path's reasons (the local backend's are checked in test_real_service.py)
PENDING_STEPS = [
    ("PENDING", "Created", "requested by alice"),
    ("PENDING", "SchedulerStarting", "waiting for the scheduler pod"),
    ("PENDING", "SchedulerStarting", "waiting for the scheduler pod"),
    ("RUNNING", "SchedulerReady", "the scheduler reported in"),
]


@pytest.fixture
async def gw(fake):
    async with Gateway(fake.address, auth=BasicAuth("alice", "pw"), asynchronous=True) as g:
        yield g


async def test_progress_printed_once_per_change_and_logged(fake, gw, capsys, caplog):
    fake.add_cluster("c1", script=list(PENDING_STEPS))
    caplog.set_level(logging.INFO, logger="jhub_gateway.client")
    with dask.config.set({"gateway.cluster.show-progress": True}):
        report = await gw._wait_for_start("c1")
    assert report.scheduler_address.endswith("/c1")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "Cluster c1: PENDING (Created: requested by alice)",
        "Cluster c1: PENDING (SchedulerStarting: waiting for the scheduler pod)",
        "Cluster c1: RUNNING (SchedulerReady: the scheduler reported in)",
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "jhub_gateway.client"]
    assert "Cluster c1: PENDING (SchedulerStarting: waiting for the scheduler pod)" in logged


async def test_no_progress_output_when_disabled(fake, gw, capsys):
    fake.add_cluster("c2", script=list(PENDING_STEPS))
    await gw._wait_for_start("c2")
    assert capsys.readouterr().err == ""


async def test_failed_start_names_the_reason(fake, gw):
    # as the controller reports a scheduler pod whose image cannot be pulled
    failed = ("FAILED", "ImagePullBackOff", 'scheduler: Back-off pulling image "nosuch:1"')
    fake.add_cluster("bad", script=[("PENDING", "SchedulerStarting", None), failed])
    with pytest.raises(
        GatewayClusterError, match="failed to start: FAILED .ImagePullBackOff: scheduler: Back-off"
    ) as info:
        await gw._wait_for_start("bad")
    assert info.value.reason == "ImagePullBackOff"


async def test_stopped_cluster_and_unknown_cluster(fake, gw):
    fake.add_cluster("gone", status="STOPPED")
    with pytest.raises(GatewayClusterError, match="already stopped"):
        await gw._wait_for_start("gone")
    with pytest.raises(ValueError, match="no cluster named 'never-existed'"):
        await gw._wait_for_start("never-existed")


async def test_transient_proxy_errors_are_retried(fake, gw):
    fake.add_cluster("flaky", script=[503, 502, ("RUNNING", None, None)])
    report = await gw._wait_for_start("flaky")
    assert report.status.name == "RUNNING"


async def test_overall_start_timeout_names_last_status(fake, gw, capsys):
    fake.wait_delay = 0.3  # a server long-poll that keeps answering PENDING
    waiting = ("PENDING", "SchedulerStarting", "waiting for the scheduler pod")
    fake.add_cluster("slow", script=[waiting])
    with dask.config.set({"gateway.cluster.start-timeout": 1.5}):
        with pytest.raises(GatewayClusterError) as info:
            await gw._wait_for_start("slow")
    msg = str(info.value)
    assert "did not start within 1.5 s" in msg
    assert "PENDING (SchedulerStarting: waiting for the scheduler pod)" in msg
    assert info.value.reason == "SchedulerStarting"


async def test_timeout_while_long_poll_is_in_flight(fake, gw):
    fake.wait_delay = 5.0  # longer than the whole budget
    fake.add_cluster("stuck", script=[("PENDING", None, None)])
    with dask.config.set({"gateway.cluster.start-timeout": 0.5}):
        with pytest.raises(GatewayClusterError, match="no answer from the server"):
            await gw._wait_for_start("stuck")


async def test_new_cluster_timeout_stops_the_cluster(fake, gw):
    fake.default_script = [("PENDING", "SchedulerStarting", "starting the scheduler process")]
    with dask.config.set({"gateway.cluster.start-timeout": 0.5}):
        with pytest.raises(GatewayClusterError, match="starting the scheduler process"):
            await gw.new_cluster()
    (cluster,) = fake.clusters.values()
    assert cluster.status == "STOPPED"  # shutdown_on_close=True cleaned up
    assert fake.log[-1]["method"] == "DELETE"


async def test_new_cluster_and_connect_async(fake, gw):
    cluster = await gw.new_cluster(worker_cores=2)
    try:
        assert cluster.status == "running"
        assert cluster.scheduler_address == f"gateway://127.0.0.1:{fake.port}/{cluster.name}"
        assert cluster.dashboard_link.endswith(f"/clusters/{cluster.name}/status")
        assert fake.clusters[cluster.name].options == {"worker_cores": 2}
        assert repr(cluster.security) == "GatewaySecurity<...>"
        assert cluster.name in cluster._repr_html_()
        await cluster.scale(2)
        other = await gw.connect(cluster.name)
        assert other.scheduler_address == cluster.scheduler_address
        await other.close()  # shutdown_on_close=False for connect()
        assert fake.clusters[cluster.name].status == "RUNNING"
    finally:
        await cluster.close()
    assert cluster.status == "closed"
    assert fake.clusters[cluster.name].status == "STOPPED"
