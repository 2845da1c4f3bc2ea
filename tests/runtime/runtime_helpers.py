"""Helpers: real dask scheduler/worker processes and a fake gateway API that records calls."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tests.polling import wait_for

DEADLINE = 60.0


def poll(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    return wait_for(condition, timeout, what=what)


class FakeGateway:
    """The gateway's scheduler-facing routes, served from a thread on 127.0.0.1."""

    def __init__(self, token: str, reject_first: int = 0) -> None:
        self.token = token
        self.reject_first = reject_first
        self.heartbeats: list[tuple[float, dict[str, Any]]] = []
        self.attempts: list[float] = []
        self.deletes: list[str] = []
        self.lock = threading.Lock()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        gateway = self

        class Base(web.RequestHandler):
            def prepare(self) -> None:
                if self.request.headers.get("Authorization") != f"token {gateway.token}":
                    raise web.HTTPError(401)

        class Heartbeat(Base):
            def post(self, name: str) -> None:
                with gateway.lock:
                    gateway.attempts.append(time.monotonic())
                    if len(gateway.attempts) <= gateway.reject_first:
                        raise web.HTTPError(503)
                    gateway.heartbeats.append((time.monotonic(), json.loads(self.request.body)))

        class Cluster(Base):
            def delete(self, name: str) -> None:
                with gateway.lock:
                    gateway.deletes.append(name)
                self.set_status(204)

        app = web.Application(
            [
                (r"/api/v1/clusters/([^/]+)/heartbeat", Heartbeat),
                (r"/api/v1/clusters/([^/]+)", Cluster),
            ],
            log_function=lambda handler: None,
        )
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server = HTTPServer(app)
        server.add_sockets(sockets)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()

    def start(self) -> FakeGateway:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def last(self) -> dict[str, Any] | None:
        with self.lock:
            return self.heartbeats[-1][1] if self.heartbeats else None

    def mark(self) -> int:
        """A position in the heartbeat log; pass it as ``since`` to ignore older ones."""
        with self.lock:
            return len(self.heartbeats)

    def wait_heartbeat(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, since: int = 0
    ) -> dict:
        def check() -> dict | None:
            with self.lock:
                recent = self.heartbeats[since:]
            return next((hb for _, hb in reversed(recent) if predicate(hb)), None)

        return poll(check, what)


class Processes:
    """Every process a test starts; all killed at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.by_name: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        self.by_name[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def start_scheduler(
    procs: Processes,
    gateway: FakeGateway,
    tls: dict[str, str],
    token_value: str,
    *extra: str,
    name: str = "scheduler",
) -> subprocess.Popen:
    env = {
        **tls,
        "DASK_GATEWAY_API_URL": gateway.url,
        "DASK_GATEWAY_API_TOKEN": token_value,
        "DASK_GATEWAY_CLUSTER_NAME": "test-cluster",
    }
    args = [
        "-m",
        "distributed.cli.dask_scheduler",
        "--host",
        "127.0.0.1",
        "--protocol",
        "tls",
        "--port",
        "0",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-dashboard",  # as the backends start it: the runtime attaches the dashboard
        "--preload",
        "jhub_gateway.runtime.preload",
        "--gateway-api-address",
        "127.0.0.1:0",
        *extra,
    ]
    return procs.start(name, args, env)


def start_worker(procs: Processes, tls: dict[str, str], address: str, name: str) -> None:
    args = [
        "-m",
        "distributed.cli.dask_worker",
        address,
        "--name",
        name,
        "--nthreads",
        "1",
        "--host",
        "127.0.0.1",
        "--no-dashboard",
    ]
    procs.start(name, args, tls)


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Blocking HTTP call returning (status, parsed JSON or None)."""
    status, raw = http_raw(method, url, body, token, headers)
    return status, json.loads(raw) if raw else None


def http_raw(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Blocking HTTP call returning (status, body bytes)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token is not None:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, raw
