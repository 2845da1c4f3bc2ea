"""The scheduler's dashboard: guarded on every request, attached off the start path.

Guard: the scheduler's HTTP server (bokeh pages and their websockets,
``/status``, ``/info``, ``/json``, ``/metrics``, ``/health``, ``/sitemap.json``:
everything distributed serves there) answers 401 unless the request carries
the cluster's dashboard credential, which only Traefik's forward-auth adds
(see ``jhub_gateway.dashboard_credential``). Its port is on a loopback host
that every local user can connect to, and ``/proc/net/tcp`` lists it, so the
route's forward-auth alone protects nothing. No path is exempt: probes use the
gateway API's ``/api/health`` on its own port, never the dashboard.

The guard sits between the HTTP server and distributed's routing application,
so routes added later (the bokeh dashboard attached after the first heartbeat)
are behind it without further work.

Late attach: importing distributed's bokeh dashboard costs about a second of
CPU. The scheduler starts with ``--no-dashboard`` (its HTTP server still
listens and is reported in heartbeats), and the dashboard is attached to that
same server once the first heartbeat has left. A request for a dashboard page
that arrives in between (the cluster is RUNNING once its route is live, which
can be before the import finishes) waits for the attach and is then sent back
to the same URL, so ``dashboard_link`` works from the first moment.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from typing import Any

from distributed.scheduler import Scheduler
from tornado import httputil, web
from tornado.routing import Router

from ..bearer import secret_matches
from ..dashboard_credential import HEADER

log = logging.getLogger("distributed.jhub_gateway.runtime")

DASHBOARD_MODULE = "distributed.dashboard.scheduler"
ATTACHED_LOG = "Dashboard attached"
#: how long a dashboard request waits for the late attach before a 503
ATTACH_WAIT = 30.0


def _quiet(handler: web.RequestHandler) -> None:
    """No access log: it would print every refused scan of the port."""


class _Refused(web.RequestHandler):
    """Every method, every path: no dashboard without the credential."""

    def prepare(self) -> None:
        self.set_status(401)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            '{"error": "unauthorized", "message": "open this dashboard through the gateway"}'
        )


class _AwaitDashboard(web.RequestHandler):
    """A page the dashboard will serve once attached: wait for it, then ask again."""

    def initialize(self, guard: DashboardGuard) -> None:
        self.guard = guard

    async def prepare(self) -> None:
        attaching = self.guard.attaching
        assert attaching is not None
        try:
            await asyncio.wait_for(asyncio.shield(attaching), ATTACH_WAIT)
        except asyncio.TimeoutError:
            self.set_status(503)
            self.set_header("Retry-After", "1")
            self.finish({"error": "unavailable", "message": "the dashboard is still starting"})
            return
        # Relative to the public URL: Traefik stripped /clusters/<name> from our path,
        # and only the last segment is replaced when the browser resolves this.
        path = self.request.path
        target = "./" if path.endswith("/") else path.rsplit("/", 1)[-1]
        if self.request.query:
            target += "?" + self.request.query
        self.redirect(target, status=307)


class DashboardGuard(Router):
    """Routes a request to the scheduler's application only if it holds the credential."""

    def __init__(self, application: web.Application, credential: str) -> None:
        self.application = application
        self._credential = credential
        #: set while the dashboard is being attached; its result: whether it was
        self.attaching: asyncio.Future[bool] | None = None
        self._refused = web.Application([(r".*", _Refused)], log_function=_quiet)
        self._waiting = web.Application(
            [(r".*", _AwaitDashboard, {"guard": self})], log_function=_quiet
        )

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate | None:
        # Constant time; a missing or non-ASCII header is a mismatch, never an error.
        if not secret_matches(self._credential, request.headers.get(HEADER)):
            return self._refused.find_handler(request, **kwargs)
        delegate = self.application.find_handler(request, **kwargs)
        not_found = issubclass(
            getattr(delegate, "handler_class", web.ErrorHandler), web.ErrorHandler
        )
        if not_found and self.attaching is not None and not self.attaching.done():
            return self._waiting.find_handler(request, **kwargs)
        return delegate


def guard(scheduler: Scheduler, credential: str) -> DashboardGuard:
    """Put the scheduler's HTTP server behind the credential (idempotent)."""
    server = scheduler.http_server
    if not isinstance(server.request_callback, DashboardGuard):
        server.request_callback = DashboardGuard(scheduler.http_application, credential)
    return server.request_callback


def expect(scheduler: Scheduler) -> None:
    """From now until ``attach`` ends, dashboard pages wait instead of answering 404."""
    guard = scheduler.http_server.request_callback
    if isinstance(guard, DashboardGuard) and guard.attaching is None:
        guard.attaching = asyncio.get_running_loop().create_future()
        if is_attached(scheduler):
            guard.attaching.set_result(True)


def guard_from_creation(credential: str) -> None:
    """Guard every scheduler's HTTP server of this process the moment it is created.

    distributed starts listening inside ``Scheduler.__init__``, before any
    preload's ``dask_setup`` runs; without this the port would answer unguarded
    while the scheduler's TLS listener comes up. The preload module is imported
    earlier in the same ``__init__``, which is when this is called.
    """
    original = Scheduler.start_http_server
    if getattr(original, "_jhub_guarded", False):
        return

    def start_http_server(self: Scheduler, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        guard(self, credential)

    start_http_server._jhub_guarded = True  # type: ignore[attr-defined]
    Scheduler.start_http_server = start_http_server  # type: ignore[method-assign,assignment]


def is_attached(scheduler: Scheduler) -> bool:
    # distributed's dashboard is a bokeh server application; none before bokeh is imported
    bokeh = sys.modules.get("bokeh.server.tornado")
    return bokeh is not None and any(
        isinstance(app, bokeh.BokehTornado) for app in scheduler.http_application.applications
    )


async def attach(scheduler: Scheduler) -> bool:
    """Attach distributed's bokeh dashboard to the running HTTP server.

    The import runs in a thread so heartbeats and ``/api/comm`` keep being
    answered meanwhile (the GIL is shared, not held for the whole import); the
    connect itself touches the event loop's objects, so it runs on the loop.
    """
    expect(scheduler)
    attached = False
    try:
        attached = await _attach(scheduler)
    finally:
        guard = scheduler.http_server.request_callback
        if isinstance(guard, DashboardGuard) and guard.attaching is not None:
            if not guard.attaching.done():
                guard.attaching.set_result(attached)
    return attached


async def _attach(scheduler: Scheduler) -> bool:
    if is_attached(scheduler):
        return True  # started with --dashboard: distributed attached it already
    try:
        module = await asyncio.to_thread(importlib.import_module, DASHBOARD_MODULE)
    except ImportError as exc:
        log.warning("No dashboard: %s (install bokeh to get one)", exc)
        return False
    if scheduler.status.name in ("closing", "closed", "failed"):
        return False
    module.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")
    log.info("%s at /status", ATTACHED_LOG)
    return True
