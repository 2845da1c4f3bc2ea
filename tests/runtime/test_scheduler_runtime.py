"""The scheduler preload in a real TLS `dask scheduler`, driven like the gateway drives it.

The tests in this module run in order against one scheduler (scale, workers,
scale-down, adaptive); the last ones cover idle shutdown and heartbeat retries
on a second scheduler.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from distributed import Client
from distributed.security import Security

from jhub_gateway.dashboard_credential import HEADER, dashboard_credential
from tests.runtime.runtime_helpers import (
    FakeGateway,
    Processes,
    http,
    http_raw,
    poll,
    start_scheduler,
    start_worker,
)

TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway(TOKEN).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def scheduler(
    procs: Processes, gateway: FakeGateway, tls: dict[str, str], tmp_path_factory
) -> dict[str, Any]:
    # Token passed as a file path, the way Kubernetes mounts it.
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    proc = start_scheduler(
        procs,
        gateway,
        tls,
        str(token_file),
        "--gateway-heartbeat-period",
        "30",
        "--gateway-adaptive-period",
        "0.5",
    )
    first = gateway.wait_heartbeat(lambda hb: True, "the first heartbeat")
    return {"proc": proc, "first": first, "comm": first["api_address"] + "/api/comm"}


def comm(scheduler: dict[str, Any], body: Any, token: str | None = TOKEN) -> tuple[int, Any]:
    return http("POST", scheduler["comm"], body, token)


def test_first_heartbeat_reports_reachable_addresses(scheduler: dict[str, Any]) -> None:
    hb = scheduler["first"]
    assert hb["scheduler_address"].startswith("tls://127.0.0.1:")
    assert hb["dashboard_address"].startswith("http://127.0.0.1:")
    assert hb["api_address"].startswith("http://127.0.0.1:")
    assert hb["count"] == 0
    assert hb["active_workers"] == hb["closing_workers"] == hb["closed_workers"] == []
    status, body = http("GET", hb["api_address"] + "/api/health")
    assert (status, body) == (200, {"status": "ok"})


# Everything distributed serves on the dashboard port, the late-attached bokeh pages
# included; "/" redirects to /status.
DASHBOARD_PATHS = (
    "/",
    "/status",
    "/individual-plots.json",
    "/health",
    "/metrics",
    "/info/main/workers.html",
    "/json/identity.json",
    "/sitemap.json",
    "/statics/css/base.css",
    "/no-such-page",
)
CREDENTIAL = dashboard_credential(TOKEN)


def upgrade(url: str, headers: dict[str, str]) -> int:
    """Status of a websocket upgrade request (raw HTTP/1.1, so nothing hides it)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        conn.request(
            "GET",
            parts.path,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
                **headers,
            },
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_dashboard_is_attached_after_start_and_answers_with_the_credential(
    scheduler: dict[str, Any],
) -> None:
    dashboard = scheduler["first"]["dashboard_address"]
    good = {HEADER: CREDENTIAL}
    # attached after the first heartbeat: poll until the bokeh pages are there
    status, body = poll(
        lambda: (r := http_raw("GET", dashboard + "/status", headers=good))[0] == 200 and r,
        "the bokeh dashboard to be attached",
    )
    assert b"bokeh" in body.lower()
    status, plots = http("GET", dashboard + "/individual-plots.json", headers=good)
    assert status == 200 and "Individual Task Stream" in plots
    assert http_raw("GET", dashboard + "/health", headers=good) == (200, b"ok")
    # the bokeh websocket is reached (bokeh itself judges the rest of the handshake)
    assert upgrade(dashboard + "/status/ws", good) != 401


@pytest.mark.parametrize(
    "headers",
    [{}, {HEADER: ""}, {HEADER: CREDENTIAL[:-1]}, {HEADER: TOKEN}, {HEADER: "é" + CREDENTIAL}],
    ids=["none", "empty", "truncated", "api-token", "non-ascii"],
)
def test_dashboard_refuses_every_path_without_the_credential(
    scheduler: dict[str, Any], headers: dict[str, str]
) -> None:
    dashboard = scheduler["first"]["dashboard_address"]
    # the same paths answer with the credential (so a refusal here is the guard's)
    poll(
        lambda: http_raw("GET", dashboard + "/status", headers={HEADER: CREDENTIAL})[0] == 200,
        "the dashboard",
    )
    for path in DASHBOARD_PATHS:
        for method, body in (("GET", None), ("POST", b"{}")):
            status, raw = http_raw(method, dashboard + path, body, headers=headers)
            assert status == 401, (method, path, status)
            assert json.loads(raw)["error"] == "unauthorized"
    assert upgrade(dashboard + "/status/ws", headers) == 401
    # the gateway API port is not the dashboard's: its health stays open
    assert http("GET", scheduler["first"]["api_address"] + "/api/health")[0] == 200


def test_comm_rejects_missing_or_wrong_token(scheduler: dict[str, Any]) -> None:
    assert comm(scheduler, {"op": "scale", "count": 1}, token=None)[0] == 401
    assert comm(scheduler, {"op": "scale", "count": 1}, token="nope")[0] == 401
    assert comm(scheduler, {"op": "scale", "count": 1}, token=TOKEN + "x")[0] == 401


def test_comm_rejects_non_json(scheduler: dict[str, Any]) -> None:
    status, reply = http("POST", scheduler["comm"], b"not json", TOKEN)
    assert (status, reply["error"]) == (400, "bad_request")


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"op": "explode"}, "unknown op"),
        ({"op": "scale"}, "'count' is required"),
        ({"op": "scale", "count": -1}, "non-negative"),
        ({"op": "scale", "count": True}, "non-negative"),
        ({"op": "adapt", "minimum": 3, "maximum": 1}, "less than"),
        ({"op": "adapt", "active": "yes"}, "'active'"),
        ([1, 2], "JSON object"),
    ],
)
def test_comm_rejects_bad_messages(scheduler: dict[str, Any], body: Any, fragment: str) -> None:
    status, reply = comm(scheduler, body)
    assert status == 422
    assert reply["error"] == "invalid_request"
    assert fragment in reply["message"]


def test_scale_up_and_workers_join(
    scheduler: dict[str, Any], gateway: FakeGateway, procs: Processes, tls: dict[str, str]
) -> None:
    mark = gateway.mark()
    status, reply = comm(scheduler, {"op": "scale", "count": 2})
    assert (status, reply["count"]) == (200, 2)
    gateway.wait_heartbeat(lambda hb: hb["count"] == 2, "a heartbeat with count 2", mark)
    address = scheduler["first"]["scheduler_address"]
    start_worker(procs, tls, address, "w1")
    start_worker(procs, tls, address, "w2")
    gateway.wait_heartbeat(
        lambda hb: hb["active_workers"] == ["w1", "w2"], "both workers in active_workers"
    )


def test_scale_down_retires_a_chosen_worker(
    scheduler: dict[str, Any], gateway: FakeGateway, procs: Processes
) -> None:
    mark = gateway.mark()
    assert comm(scheduler, {"op": "scale", "count": 1})[0] == 200
    hb = gateway.wait_heartbeat(
        lambda hb: hb["count"] == 1 and len(hb["closing_workers"]) == 1, "a closing worker", mark
    )
    (victim,) = hb["closing_workers"]
    assert hb["active_workers"] == sorted({"w1", "w2"} - {victim})
    gateway.wait_heartbeat(
        lambda hb: victim in hb["closed_workers"] and victim not in hb["active_workers"],
        "the victim reported closed",
        mark,
    )
    worker_proc = procs.by_name[victim]
    poll(lambda: worker_proc.poll() is not None, "the retired worker process to exit")
    survivor = gateway.last()
    assert survivor is not None and survivor["closing_workers"] == []


def test_adaptive_scales_up_under_load_and_back_down(
    scheduler: dict[str, Any], gateway: FakeGateway, tls: dict[str, str]
) -> None:
    status, reply = comm(scheduler, {"op": "adapt", "minimum": 1, "maximum": 2, "active": True})
    assert (status, reply["adaptive"]) == (200, {"minimum": 1, "maximum": 2})
    security = Security(
        tls_ca_file=tls["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"],
        tls_client_cert=tls["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"],
        tls_client_key=tls["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"],
        require_encryption=True,
    )
    mark = gateway.mark()
    with Client(scheduler["first"]["scheduler_address"], security=security, timeout=60) as client:
        # time.sleep pickles by reference, so the scheduler can load it.
        futures = client.map(time.sleep, [0.5] * 40, pure=False)
        beat = gateway.wait_heartbeat(lambda hb: hb["count"] == 2, "adaptive scale-up to 2", mark)
        # the bounds ride along: what the gateway shows clients (the JupyterLab sidebar)
        assert beat["adaptive"] == {"minimum": 1, "maximum": 2}
        mark = gateway.mark()
        client.cancel(futures)
        del futures
    gateway.wait_heartbeat(lambda hb: hb["count"] == 1, "adaptive scale-down to 1", mark)


def test_token_never_logged(scheduler: dict[str, Any], procs: Processes) -> None:
    logs = [p.read_text(errors="replace") for p in Path(procs.log_dir).glob("*.log")]
    assert any("Gateway runtime API at" in text for text in logs)
    assert not any(TOKEN in text for text in logs)


def test_idle_timeout_asks_gateway_to_stop(procs: Processes, tls: dict[str, str]) -> None:
    # Heartbeats only on change, and the gateway refuses the first two:
    # retries must back off from 0.25 s, not wait for the (hourly) period.
    gw = FakeGateway(TOKEN, reject_first=2).start()
    try:
        proc = start_scheduler(
            procs,
            gw,
            tls,
            TOKEN,
            "--gateway-heartbeat-period",
            "0",
            "--gateway-idle-timeout",
            "2",
            name="idle-scheduler",
        )
        gw.wait_heartbeat(lambda hb: True, "a heartbeat after two rejections")
        assert len(gw.attempts) == 3
        assert gw.attempts[2] - gw.attempts[0] < 10
        poll(lambda: gw.deletes, "the idle DELETE")
        assert gw.deletes[0] == "test-cluster"
        assert proc.poll() is None  # the gateway, not the scheduler, ends the cluster
    finally:
        gw.stop()
