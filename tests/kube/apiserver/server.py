"""The emulator process: aiohttp app, controllers and a kubeconfig pointing at it.

Two listeners on 127.0.0.1 serve the same API: plain HTTP (``url``, what the
kubeconfig names) and HTTPS (``https_url``) with a certificate from the
emulator's own CA (``ca_path``), valid for 127.0.0.1, localhost and the
``kubernetes.default.svc`` names; pods reach the API through the HTTPS one.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
from pathlib import Path

import yaml
from aiohttp import web

from .access import Access
from .auth import ADMIN_TOKEN
from .batch import BatchController
from .controllers import Controller, GarbageCollector, NamespaceController
from .endpoints_v1 import EndpointsController
from .handlers import Router
from .resources import Registry
from .store import Store
from .verbs import Api
from .workloads import WorkloadController

log = logging.getLogger(__name__)
TOKEN = ADMIN_TOKEN  # the kubeconfig user's token: cluster-admin (system:masters)
SERVER_NAMES = ("127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
                "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")  # fmt: skip


def write_kubeconfig(
    path: Path, url: str, namespace: str = "default", ca_pem: bytes | None = None
) -> Path:
    cluster: dict[str, str] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": cluster}],
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


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class Emulator:
    """A Kubernetes API server on 127.0.0.1 (in this event loop).

    ``workdir/logs`` is where the process kubelet writes container logs that
    ``pods/log`` serves. ``history`` bounds the per-resource watch history.
    ``rbac=False`` turns authentication and authorisation off (everyone is admin).
    """

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        history: int = 10000,
        rbac: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.https_port = 0
        self.store = Store(history=history)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.access = Access(self.store, enabled=rbac)
        self.router = Router(self.api, self.registry, self.workdir / "logs", self.access)
        self.ca_pem = b""
        self._controllers: list[Controller] = []
        self.batch: BatchController | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def ca_path(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def _tls(self) -> ssl.SSLContext:
        import trustme

        ca = trustme.CA(organization_name="kube emulator")
        cert = ca.issue_cert(*SERVER_NAMES)
        self.ca_pem = ca.cert_pem.bytes()
        self.ca_path.parent.mkdir(parents=True, exist_ok=True)
        self.ca_path.write_bytes(self.ca_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.router.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=2.0)  # fmt: skip
        await self._runner.setup()
        sock = _listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        tls_sock = _listen(self.host, 0)
        self.https_port = tls_sock.getsockname()[1]
        await web.SockSite(self._runner, tls_sock, ssl_context=self._tls()).start()
        self.batch = BatchController(self.api)
        self._controllers = [
            GarbageCollector(self.api),
            NamespaceController(self.api),
            WorkloadController(self.api),
            EndpointsController(self.api),
            self.batch,
        ]
        for controller in self._controllers:
            controller.start()
        log.info("Kubernetes API emulator listening on %s and %s", self.url, self.https_url)

    def write_kubeconfig(self, path: Path, namespace: str = "default", tls: bool = False) -> Path:
        """A kubeconfig for the admin user (``tls``: the HTTPS listener, CA embedded)."""
        if tls:
            return write_kubeconfig(path, self.https_url, namespace, self.ca_pem)
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
