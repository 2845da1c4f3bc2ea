"""``scale(n, wait=True)``: live worker progress from the event stream, failures with reasons."""

from __future__ import annotations

import asyncio
import time
import warnings

import dask
import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth, GatewayClusterError, GatewayWarning
from tests.gatewaytools import running_gateway

EXTRA_CONFIG = """
import sys
from jhub_gateway.options import Options, Select

BROKEN = [sys.executable, "-c",
          "import sys; print('worker boom: no such device', flush=True); sys.exit(3)"]
# a worker that never reaches its scheduler
SILENT = [sys.executable, "-c", "import time; time.sleep(600)"]
c.GatewayApp.cluster_options = Options(
    Select("workers", ["normal", "broken", "silent"]),
    handler=lambda o: {"broken": {"worker_cmd": BROKEN}, "silent": {"worker_cmd": SILENT}}.get(
        o.workers, {}
    ),
)
c.ClusterConfig.cluster_max_workers = 2
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("scalewait"), extra_config=EXTRA_CONFIG) as gw:
        yield gw


def progress_lines(capsys, name: str) -> list[str]:
    prefix = f"Cluster {name}: "
    return [
        line[len(prefix) :]
        for line in capsys.readouterr().err.splitlines()
        if line.startswith(prefix)
    ]


def test_scale_without_wait_returns_before_the_workers_run(gateway):
    with Gateway(gateway.address, auth=BasicAuth("alice")) as gw:
        cluster = gw.new_cluster()
        try:
            cluster.scale(2)  # upstream's behaviour: the request is taken, nothing awaited
            _, body = gateway.request("GET", f"/api/v1/clusters/{cluster.name}", user="alice")
            assert body["workers"] == {"requested": 2, "active": 0, **_sizes(body)}
        finally:
            cluster.shutdown()


def _sizes(body: dict) -> dict:
    return {k: body["workers"][k] for k in ("cores", "memory")}


def test_scale_wait_shows_each_worker_joining_and_returns_when_they_run(gateway, capsys):
    with dask.config.set({"gateway.cluster.show-progress": True}):
        with Gateway(gateway.address, auth=BasicAuth("bob")) as gw:
            cluster = gw.new_cluster()
            try:
                capsys.readouterr()  # the start's own progress is not what this test reads
                cluster.scale(2, wait=True, timeout=120)
                _, body = gateway.request("GET", f"/api/v1/clusters/{cluster.name}", user="bob")
                assert body["workers"]["active"] == 2
                lines = progress_lines(capsys, cluster.name)
                counts = [line for line in lines if line.startswith("workers ")]
                assert counts[0] == "workers 0/2" and counts[-1] == "workers 2/2", lines
                # the start's events are history: none of them is shown again
                assert not any(line.startswith("PENDING") for line in lines), lines

                cluster.scale(1, wait=True, timeout=120)  # down: returns once one is left
                _, body = gateway.request("GET", f"/api/v1/clusters/{cluster.name}", user="bob")
                assert body["workers"]["active"] == 1
                assert progress_lines(capsys, cluster.name)[-1] == "workers 1/1"
            finally:
                cluster.shutdown()


def test_workers_that_fail_to_start_raise_with_the_reason_and_their_log(gateway, capsys):
    with dask.config.set({"gateway.cluster.show-progress": True}):
        with Gateway(gateway.address, auth=BasicAuth("carol")) as gw:
            cluster = gw.new_cluster(workers="broken")
            name = cluster.name
            try:
                with pytest.raises(GatewayClusterError) as info:
                    cluster.scale(1, wait=True, timeout=120)
            finally:
                cluster.shutdown()
    assert info.value.reason == "WorkerStartFailed"
    assert "worker boom: no such device" in str(info.value)
    shown = progress_lines(capsys, name)
    assert any(line.startswith("WorkerExited") for line in shown), shown


def test_a_worker_that_never_connects_times_out_with_the_counts(gateway):
    with Gateway(gateway.address, auth=BasicAuth("dan")) as gw:
        cluster = gw.new_cluster(workers="silent")
        try:
            began = time.monotonic()
            with pytest.raises(GatewayClusterError) as info:
                cluster.scale(1, wait=True, timeout=3)
            took = time.monotonic() - began
        finally:
            cluster.shutdown()
    assert info.value.reason == "WorkerStartTimeout"
    assert "has 0 of 1 workers after 3 s" in str(info.value)
    assert 3 <= took < 20


async def test_async_scale_wait_for_a_clamped_request_waits_for_what_was_granted(gateway):
    async with Gateway(gateway.address, auth=BasicAuth("erin"), asynchronous=True) as gw:
        cluster = await gw.new_cluster()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await asyncio.wait_for(cluster.scale(3, wait=True, timeout=120), 150)
            assert [type(w.message) for w in caught] == [GatewayWarning]
            _, body = gateway.request("GET", f"/api/v1/clusters/{cluster.name}", user="erin")
            assert body["workers"]["requested"] == 2 and body["workers"]["active"] == 2
        finally:
            await cluster.shutdown()
