"""The dashboard guard is on the HTTP server from the moment distributed creates it.

In-process: distributed listens inside ``Scheduler.__init__``, before any
preload's ``dask_setup``; the preload's import-time hook must already have
wrapped the server then. A scheduler started with ``--dashboard`` (distributed
attached bokeh itself) keeps one dashboard when the runtime attaches late.
A page asked for before the late attach waits for it.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from distributed.scheduler import Scheduler
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from jhub_gateway.dashboard_credential import HEADER
from jhub_gateway.runtime import dashboard


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    # restored at teardown, so no other test's scheduler is guarded
    monkeypatch.setattr(Scheduler, "start_http_server", Scheduler.start_http_server)
    dashboard.guard_from_creation("credential")


async def test_the_server_is_guarded_when_created_before_the_scheduler_starts(hooked) -> None:
    scheduler = Scheduler(dashboard_address="127.0.0.1:0", dashboard=False)
    try:
        assert isinstance(scheduler.http_server.request_callback, dashboard.DashboardGuard)
        # a second hook or dask_setup's own guard() does not wrap the guard again
        dashboard.guard_from_creation("credential")
        dashboard.guard(scheduler, "credential")
        guard = scheduler.http_server.request_callback
        assert guard.application is scheduler.http_application
    finally:
        await scheduler.close()


async def test_a_dashboard_distributed_attached_is_not_attached_twice(hooked) -> None:
    scheduler = Scheduler(dashboard_address="127.0.0.1:0", dashboard=True)
    try:
        assert dashboard.is_attached(scheduler)
        assert await dashboard.attach(scheduler)
        from bokeh.server.tornado import BokehTornado

        apps = scheduler.http_application.applications
        assert len([a for a in apps if isinstance(a, BokehTornado)]) == 1
        assert isinstance(scheduler.http_server.request_callback, dashboard.DashboardGuard)
    finally:
        await scheduler.close()


async def _get(url: str, **headers: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(
        url, headers=headers, follow_redirects=False, raise_error=False, request_timeout=60
    )


async def test_a_page_asked_for_before_the_attach_waits_for_it(hooked) -> None:
    scheduler = Scheduler(dashboard_address="127.0.0.1:0", dashboard=False)
    base = f"http://127.0.0.1:{scheduler.http_server.port}"
    good = {HEADER: "credential"}
    try:
        dashboard.expect(scheduler)
        early = asyncio.ensure_future(_get(base + "/status?theme=dark", **good))
        root = asyncio.ensure_future(_get(base + "/", **good))
        # the core routes do not wait, and the credential check comes first
        assert (await _get(base + "/health", **good)).code == 200
        assert (await _get(base + "/status")).code == 401
        assert not early.done()
        assert await dashboard.attach(scheduler)
        resp = await early
        # sent back to itself, relative to the public URL Traefik stripped
        assert (resp.code, resp.headers["Location"]) == (307, "status?theme=dark")
        assert ((await root).code, (await root).headers["Location"]) == (307, "./")
        assert (await _get(base + "/status", **good)).code == 200
        assert (await _get(base + "/no-such-page", **good)).code == 404  # no wait once attached
    finally:
        await scheduler.close()


async def test_a_page_that_waits_too_long_is_told_to_retry(hooked, monkeypatch) -> None:
    monkeypatch.setattr(dashboard, "ATTACH_WAIT", 0.2)
    scheduler = Scheduler(dashboard_address="127.0.0.1:0", dashboard=False)
    try:
        dashboard.expect(scheduler)
        resp = await _get(
            f"http://127.0.0.1:{scheduler.http_server.port}/status", **{HEADER: "credential"}
        )
        assert (resp.code, resp.headers["Retry-After"]) == (503, "1")
        assert json.loads(resp.body)["error"] == "unavailable"
    finally:
        await scheduler.close()
