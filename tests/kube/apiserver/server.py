"""The emulator process: aiohttp app, controllers and a kubeconfig pointing at it."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import yaml
from aiohttp import web

from .controllers import Controller, GarbageCollector, NamespaceController
from .handlers import Router
from .resources import Registry
from .store import Store
from .verbs import Api
from .workloads import WorkloadController

log = logging.getLogger(__name__)
TOKEN = "emulator-token"  # any bearer token (or none) is accepted


def write_kubeconfig(path: Path, url: str, namespace: str = "default") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
            }
        ],
        "current-context": "emulator",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Emulator:
    """A Kubernetes API server on 127.0.0.1 (in this event loop).

    ``workdir/logs`` is where the process kubelet writes container logs that
    ``pods/log`` serves. ``history`` bounds the per-resource watch history.
    """

    def __init__(
        self, workdir: Path, host: str = "127.0.0.1", port: int = 0, history: int = 10000
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.store = Store(history=history)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.router = Router(self.api, self.registry, self.workdir / "logs")
        self._controllers: list[Controller] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.router.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=2.0)  # fmt: skip
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._controllers = [
            GarbageCollector(self.api),
            NamespaceController(self.api),
            WorkloadController(self.api),
        ]
        for controller in self._controllers:
            controller.start()
        log.info("Kubernetes API emulator listening on %s", self.url)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, namespace)

    async def stop(self) -> None:
        for controller in self._controllers:
            await controller.stop()
        self._controllers = []
        self.router.stopping.set()
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
