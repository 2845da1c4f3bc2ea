"""Start feedback: a cluster's events as a server-sent stream, and the client's progress."""

from __future__ import annotations

import json

import aiohttp
import dask
import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import basic, running_gateway

EXTRA_CONFIG = """
import sys
from jhub_gateway.options import Options, Select

# a scheduler that takes a while: sleeps, then runs the real one with its arguments
SLOW = [sys.executable, "-c",
        "import runpy, sys, time; time.sleep(1.5); sys.argv[0] = 'dask-scheduler'; "
        "runpy.run_module('distributed.cli.dask_scheduler', run_name='__main__')"]
c.GatewayApp.cluster_options = Options(
    Select("mode", ["normal", "slow"]),
    handler=lambda o: {"scheduler_cmd": SLOW} if o.mode == "slow" else {},
)
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("feedback"), extra_config=EXTRA_CONFIG) as gw:
        yield gw


async def read_stream(response: aiohttp.ClientResponse, until_kind: str | None = None):
    """(id, event type, data) frames until ``until_kind`` is seen or the stream ends."""
    frames = []
    frame: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line == "":
            if "event" in frame:
                data = json.loads(frame["data"])
                frames.append((frame.get("id"), frame["event"], data))
                if frame["event"] == "end" or (until_kind and data.get("kind") == until_kind):
                    return frames
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            frame[field] = value
    return frames


async def test_the_event_stream_follows_a_start_and_ends_with_the_cluster(gateway):
    status, body = gateway.request(
        "POST", "/api/v1/clusters/", {"cluster_options": {"mode": "slow"}}, user="alice"
    )
    assert status == 201
    name = body["name"]
    url = f"{gateway.address}/api/v1/clusters/{name}/events"
    headers = {"Authorization": basic("alice"), "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.get(url, headers=headers) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            started = await read_stream(r, until_kind="RUNNING")
        kinds = [data["kind"] for _, kind, data in started if kind == "cluster-event"]
        assert kinds[0] == "PENDING" and kinds[-1] == "RUNNING"
        ids = [int(i) for i, _, _ in started if i is not None]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # resume after the last event seen: only what is new, until the end
        async with s.get(url, headers={**headers, "Last-Event-ID": str(ids[-1])}) as r:
            gateway.request("DELETE", f"/api/v1/clusters/{name}", user="alice")
            rest = await read_stream(r)
        assert rest[-1][1] == "end" and rest[-1][2]["status"] in ("STOPPED", "FAILED")
        assert all(int(i) > ids[-1] for i, kind, _ in rest if kind == "cluster-event")
        assert any(data.get("kind") == "STOPPED" for _, _, data in rest)


async def test_the_event_stream_refuses_what_it_must(gateway):
    status, body = gateway.request("POST", "/api/v1/clusters/", {}, user="alice")
    url = f"{gateway.address}/api/v1/clusters/{body['name']}/events"
    stream = {"Accept": "text/event-stream"}
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=stream) as r:
            assert r.status == 401
        async with s.get(url, headers={**stream, "Authorization": basic("mallory")}) as r:
            assert r.status == 403 and (await r.json())["error"] == "not_owner"
        bad = {**stream, "Authorization": basic("alice"), "Last-Event-ID": "-1; drop"}
        async with s.get(url, headers=bad) as r:
            assert r.status == 400 and (await r.json())["error"] == "malformed_event_id"
    gateway.request("DELETE", f"/api/v1/clusters/{body['name']}", user="alice")


def test_the_client_shows_each_event_of_a_slow_start_in_order(gateway, capsys):
    with dask.config.set({"gateway.cluster.show-progress": True}):
        with Gateway(gateway.address, auth=BasicAuth("carol")) as gw:
            cluster = gw.new_cluster(mode="slow")
            cluster.shutdown()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Cluster ")]
    text = "\n".join(lines)
    assert "PENDING" in text and "RUNNING" in text, text
    assert text.index("PENDING") < text.index("RUNNING")
    assert len(lines) == len(set(lines)), "each step is shown once"


def test_our_clients_see_what_each_worker_holds_upstreams_do_not(gateway):
    status, body = gateway.request("POST", "/api/v1/clusters/", {}, user="dan")
    name = body["name"]
    _, ours = gateway.request("GET", f"/api/v1/clusters/{name}", user="dan")
    assert ours["workers"]["cores"] == 1.0 and ours["workers"]["memory"] == 2 * 2**30
    # the upstream client builds its report from the fields and fails on unknown ones
    _, plain = gateway.request(
        "GET", f"/api/v1/clusters/{name}", user="dan", headers={"X-Gateway-Extensions": "0"}
    )
    assert "workers" not in plain
    gateway.request("DELETE", f"/api/v1/clusters/{name}", user="dan")
