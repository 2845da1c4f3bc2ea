"""Scheduler-side cluster state: worker count, adaptive scaling, heartbeats, idle shutdown.

Scaling is scheduler-driven: the gateway only sets a count (or adaptive
bounds) through ``/api/comm``; the scheduler reports the count and its workers
in heartbeats, picks which workers retire and retires them itself once the
gateway has seen the heartbeat naming them, so the backend never kills a
worker the scheduler still relies on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from distributed.comm.addressing import get_address_host, unparse_host_port
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.metrics import time
from distributed.scheduler import Scheduler, WorkerState
from distributed.utils import get_ip
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from . import dashboard
from .api import make_app
from .gateway_client import GatewayClient

log = logging.getLogger("distributed.jhub_gateway.runtime")

PLUGIN_NAME = "jhub-gateway-runtime"
# With heartbeat period 0 liveness isn't tracked, but state still gets refreshed hourly.
CHANGE_ONLY_PERIOD = 3600.0
INITIAL_BACKOFF = 0.25
# Backoff cap in change-only mode: a lost change must not wait an hour.
CHANGE_ONLY_BACKOFF_CAP = 60.0
ADAPTIVE_WINDOW = 3
# The dashboard is attached once a client connects or a page is asked for, else after this.
DASHBOARD_ATTACH_AFTER = 2.0
_ANY_HOST = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class RuntimeSettings:
    api_url: str
    cluster_name: str
    token: str
    api_host: str | None = None
    api_port: int = 0
    heartbeat_period: float = 15.0
    adaptive_period: float = 3.0
    idle_timeout: float = 0.0

    def __repr__(self) -> str:
        # Keep the token out of any log line or traceback that prints settings.
        return f"RuntimeSettings(api_url={self.api_url!r}, cluster_name={self.cluster_name!r})"


class GatewaySchedulerService(SchedulerPlugin):
    """Owns the HTTP API server and the heartbeat/adaptive/idle tasks of one scheduler."""

    name = PLUGIN_NAME

    def __init__(self, scheduler: Scheduler, settings: RuntimeSettings) -> None:
        self.scheduler = scheduler
        self.settings = settings
        self.client = GatewayClient(settings.api_url, settings.cluster_name, settings.token)
        self.count = 0
        self.adaptive: tuple[int, int | None] | None = None
        self._adapt_history: collections.deque[int] = collections.deque(maxlen=ADAPTIVE_WINDOW)
        # Names, not addresses: the backend knows workers by the --name it gave them.
        self._names: dict[str, str] = {}
        self.closing: set[str] = set()
        self.closed: set[str] = set()
        self._retiring: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: HTTPServer | None = None
        self._idle_reported = False
        self._dashboard_requested = False
        self._stopped = False
        self.api_address = ""

    # -- lifecycle -------------------------------------------------------------

    async def start_service(self) -> None:
        """Listen for the gateway and start the loops; the first heartbeat leaves at once."""
        host = self.settings.api_host
        if host is None:
            # Same interface as the scheduler: loopback schedulers keep their API private.
            host = get_address_host(self.scheduler.listeners[0].listen_address)
        sockets = bind_sockets(self.settings.api_port, address=host or None)
        self._server = HTTPServer(make_app(self, self.settings.token))
        self._server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        advertised = self._scheduler_host() if host in _ANY_HOST else host
        self.api_address = "http://" + unparse_host_port(advertised, port)
        for address, ws in self.scheduler.workers.items():
            self._names[address] = str(ws.name)

        # until the late attach is done, dashboard pages wait for it instead of a 404
        dashboard.expect(self.scheduler)
        self._wake.set()
        self._spawn(self._heartbeat_loop())
        self._spawn(self._adapt_loop())
        if self.settings.idle_timeout > 0:
            self._spawn(self._idle_loop())
        log.info("Gateway runtime API at %s", self.api_address)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    async def close(self) -> None:
        await self.stop()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- SchedulerPlugin hooks -------------------------------------------------

    def add_client(self, scheduler: Scheduler, client: str) -> None:
        dashboard.want(scheduler)

    def add_worker(self, scheduler: Scheduler, worker: str) -> None:
        ws = scheduler.workers.get(worker)
        if ws is None:
            return
        name = str(ws.name)
        self._names[worker] = name
        self.closed.discard(name)
        self._close_excess()
        self.trigger()

    def remove_worker(
        self, scheduler: Scheduler, worker: str, *, stimulus_id: str, **kwargs: Any
    ) -> None:
        name = self._names.pop(worker, None)
        if name is None or name in self._names.values():
            return
        self.closing.discard(name)
        self._retiring.discard(name)
        self.closed.add(name)
        self.trigger()

    def valid_workers_downscaling(
        self, scheduler: Scheduler, workers: list[WorkerState]
    ) -> list[WorkerState]:
        # Already-chosen victims must not be counted again when picking more.
        return [ws for ws in workers if str(ws.name) not in self.closing]

    # -- scaling ---------------------------------------------------------------

    def trigger(self) -> None:
        """Request a heartbeat now; requests made while one is in flight coalesce."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        adaptive = None
        if self.adaptive is not None:
            adaptive = {"minimum": self.adaptive[0], "maximum": self.adaptive[1]}
        return {"count": self.count, "adaptive": adaptive}

    def active_workers(self) -> set[str]:
        return set(self._names.values()) - self.closing

    def scale(self, count: int) -> None:
        """Explicit scale from the gateway: fixed count, adaptive off."""
        log.info("Scaling to %d workers", count)
        self.adaptive = None
        self._set_count(count)
        self.trigger()

    def adapt(self, minimum: int = 0, maximum: int | None = None, active: bool = True) -> None:
        if not active:
            log.info("Adaptive scaling disabled")
            self.adaptive = None
            self.trigger()
            return
        log.info("Adaptive scaling between %s and %s workers", minimum, maximum)
        self.adaptive = (minimum, maximum)
        self._adapt_history.clear()
        # Bounds and a scale-up apply now, not one adaptive period later.
        self._adapt_step()
        self.trigger()

    def _set_count(self, count: int) -> None:
        self.count = count
        self._close_excess()

    def _close_excess(self) -> None:
        excess = len(self.active_workers()) - self.count
        if excess <= 0:
            return
        victims = self.scheduler.workers_to_close(n=excess, attribute="name")
        chosen = {str(v) for v in victims} - self.closing
        if chosen:
            log.info("Closing workers %s", sorted(chosen))
            self.closing |= chosen

    def _clamp(self, n: int) -> int:
        assert self.adaptive is not None
        minimum, maximum = self.adaptive
        n = max(n, minimum)
        return n if maximum is None else min(n, maximum)

    def _adapt_step(self) -> None:
        if self.adaptive is None:
            return
        target = self._clamp(self.scheduler.adaptive_target())
        self._adapt_history.append(target)
        if target > self.count:
            new = target
        elif len(self._adapt_history) == ADAPTIVE_WINDOW:
            # Scale down only as far as the recent peak, so a momentary lull
            # between two computations doesn't kill workers that are needed again.
            new = max(self._adapt_history)
        else:
            new = self._clamp(self.count)
        if new != self.count:
            log.info("Adaptive scaling from %d to %d workers", self.count, new)
            self._set_count(new)
            self.trigger()

    def _retire_closing(self) -> None:
        names = self.closing - self._retiring
        if not names:
            return
        self._retiring |= names
        self._spawn(self._retire(names))

    async def _retire(self, names: set[str]) -> None:
        originals = [ws.name for ws in self.scheduler.workers.values() if str(ws.name) in names]
        try:
            await self.scheduler.retire_workers(
                names=originals,
                remove=True,
                close_workers=True,
                stimulus_id=f"jhub-gateway-scale-down-{time()}",
            )
        except Exception:
            log.warning("Retiring workers %s failed", sorted(names), exc_info=True)
        finally:
            # Workers that are still here get another retire after the next heartbeat.
            self._retiring -= names

    # -- heartbeats ------------------------------------------------------------

    def _scheduler_host(self) -> str:
        host = get_address_host(self.scheduler.address)
        return get_ip() if host in _ANY_HOST else host

    def heartbeat_message(self) -> dict[str, Any]:
        dashboard = ""
        server = self.scheduler.services.get("dashboard")
        if server is not None:
            dashboard = "http://" + unparse_host_port(self._scheduler_host(), server.port)
        return {
            "scheduler_address": self.scheduler.address,
            "dashboard_address": dashboard,
            "api_address": self.api_address,
            "count": self.count,
            "active_workers": sorted(self.active_workers()),
            "closing_workers": sorted(self.closing),
            "closed_workers": sorted(self.closed),
            "idle_seconds": self.idle_seconds(),
            # the gateway shows these bounds to clients (the JupyterLab sidebar)
            "adaptive": self.status()["adaptive"],
        }

    @property
    def _period(self) -> float:
        return self.settings.heartbeat_period or CHANGE_ONLY_PERIOD

    async def _heartbeat_loop(self) -> None:
        cap = self.settings.heartbeat_period or CHANGE_ONLY_BACKOFF_CAP
        backoff = INITIAL_BACKOFF
        wait = self._period
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self._close_excess()
            message = self.heartbeat_message()
            closed_sent = set(message["closed_workers"])
            try:
                ok = await self.client.heartbeat(message)
            except Exception:
                log.warning("Heartbeat failed", exc_info=True)
                ok = False
            if not self._dashboard_requested:
                # Off the start path: the first heartbeat (which publishes the route)
                # does not wait for the bokeh import, nor do the route and the first
                # client; a page asked for meanwhile waits for the attach.
                self._dashboard_requested = True
                self._spawn(self._attach_dashboard())
            if ok:
                self.closed -= closed_sent
                backoff = INITIAL_BACKOFF
                wait = self._period
                self._retire_closing()
            else:
                wait = backoff
                backoff = min(backoff * 2, cap)

    async def _attach_dashboard(self) -> None:
        try:
            await dashboard.attach_when_wanted(self.scheduler, DASHBOARD_ATTACH_AFTER)
        except Exception:
            log.warning("Attaching the dashboard failed", exc_info=True)

    async def _adapt_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.adaptive_period)
            try:
                self._adapt_step()
            except Exception:
                log.warning("Adaptive scaling step failed", exc_info=True)

    # -- idle shutdown ---------------------------------------------------------

    def idle_seconds(self) -> float:
        """How long the scheduler has had no work (0 while it has some)."""
        s = self.scheduler
        # The scheduler's own check_idle (run every 250 ms) resets idle_since on
        # any task transition; the explicit checks guard against a stale value.
        if s.idle_since is None or s.queued or s.unrunnable:
            return 0.0
        if any(ws.processing for ws in s.workers.values()):
            return 0.0
        return max(0.0, time() - s.idle_since)

    def is_idle(self) -> bool:
        return self.idle_seconds() >= self.settings.idle_timeout > 0

    async def _idle_loop(self) -> None:
        interval = self.settings.idle_timeout / 4
        while True:
            await asyncio.sleep(interval)
            if not self.is_idle():
                self._idle_reported = False
                continue
            if self._idle_reported:
                continue
            log.info(
                "Cluster idle for %s s, asking the gateway to stop it", self.settings.idle_timeout
            )
            try:
                self._idle_reported = await self.client.stop_cluster()
            except Exception:
                log.warning("Idle shutdown request failed", exc_info=True)
