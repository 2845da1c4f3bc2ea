"""The ``jhub-gateway`` command: configuration, wiring and process lifecycle."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import logging
import os
import secrets
import signal
import socket
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Integer, TraitError, Unicode, default, validate
from traitlets.config import Application, catch_config_error

from jhub_gateway import __version__, redact
from jhub_gateway.dashboard_credential import AUTH_PATH
from jhub_gateway.options import Options

from . import check_config, upstream_compat
from .auth import auth_class
from .auth.base import Authenticator
from .backends import backend_class
from .backends.base import Backend, GatewayContext
from .backends.local.store import StoreError
from .clusters import ClusterService
from .idle import IdlePolicy
from .metrics import ServiceMetrics
from .proxy import ProxyError
from .quotas import UserQuotas
from .server_watch import ServerWatch, ServerWatchLoop, start_server_watch
from .session import SessionCookies
from .web import make_http_server, make_web_app

log = logging.getLogger("jhub_gateway.hub_service")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "jhub-gateway")


def _host_port(value: str, trait: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{trait} must look like HOST:PORT (e.g. 127.0.0.1:8000), got {value!r}")
    return host or "0.0.0.0", int(port)


class GatewayApp(Application):
    """Per-user Dask clusters for JupyterHub users."""

    name = "jhub-gateway"
    version = __version__
    description = "Give JupyterHub users their own Dask clusters, proxied through Traefik."
    raise_config_file_errors = True

    aliases: dict[Any, Any] = {
        "address": "GatewayApp.address",
        "backend": "GatewayApp.backend",
        "auth": "GatewayApp.authenticator",
        "data-dir": "GatewayApp.data_dir",
        "log-level": "Application.log_level",
        ("f", "config"): "GatewayApp.config_file",
        "prefix": "GatewayApp.prefix",
        "api-listen": "GatewayApp.api_listen",
    }
    flags = {
        "generate-config": (
            {"GatewayApp": {"generate_config": True}},
            "Write a commented config file and exit.",
        ),
        "check-config": (
            {"GatewayApp": {"check_config": True}},
            "Load the config file, build everything without starting it, print the options and exit.",
        ),
    }

    config_file = Unicode(
        "jhub_gateway_config.py", help="The Python config file to load.", config=True
    )
    generate_config = Bool(
        False, help="Write a commented config file to config_file and exit.", config=True
    )
    check_config = Bool(
        False,
        help="Validate config_file (build authenticator, backend, options) without starting; exit.",
        config=True,
    )

    address = Unicode(
        help="""Public HOST:PORT where Traefik listens: the API, dashboards and scheduler TLS.

        Defaults to the host and port of JUPYTERHUB_SERVICE_URL when the hub runs
        this service, else 127.0.0.1:8000.""",
        config=True,
    )
    api_listen = Unicode(
        "127.0.0.1:0",
        help="Where the Tornado API itself listens (Traefik routes to it). Port 0 picks a free port.",
        config=True,
    )
    prefix = Unicode(
        help="URL prefix of the service, e.g. /services/dask-gateway/ (default: JUPYTERHUB_SERVICE_PREFIX or /).",
        config=True,
    )
    backend = Unicode(
        "local",
        help="Cluster backend: 'local' (processes on this machine), 'kubernetes', or a dotted class path.",
        config=True,
    )
    authenticator = Unicode(
        "simple",
        help="How users authenticate: 'simple', 'jupyterhub', or a dotted Authenticator class path (custom).",
        config=True,
    )
    data_dir = Unicode(
        help="Directory for state (SQLite), keys, cluster logs and Traefik config. Created 0700 if missing.",
        config=True,
    )
    cluster_options = AnyTrait(
        help="""Options users may set on new clusters: an ``Options(...)`` or a function
        ``user -> Options`` (sync or async) to vary options by user or group.""",
        config=True,
    )
    cookie_secret = Unicode(
        help="""Hex secret signing session cookies. Must be the same on every replica.

        Default: env JHUB_GATEWAY_COOKIE_SECRET, else derived from JUPYTERHUB_API_TOKEN,
        else a random secret kept in data_dir.""",
        config=True,
    )
    session_max_age = Float(
        60.0,
        min=0,
        help="""Seconds a session cookie stays valid before the caller re-authenticates
        (0 disables cookies). A revoked hub token keeps working at most this long.""",
        config=True,
    )
    max_body_bytes = Integer(
        1024 * 1024,
        min=1024,
        help="Largest request body accepted, in bytes (larger: 413).",
        config=True,
    )

    @default("address")
    def _default_address(self) -> str:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if url:
            from urllib.parse import urlparse

            parsed = urlparse(url)
            return f"{parsed.hostname}:{parsed.port or 80}"
        return "127.0.0.1:8000"

    @default("prefix")
    def _default_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return _default_data_dir()

    @default("cluster_options")
    def _default_cluster_options(self) -> Options:
        return Options()

    @validate("address", "api_listen")
    def _check_address(self, proposal: dict) -> str:
        _host_port(proposal["value"], proposal["trait"].name)
        return proposal["value"]

    @validate("prefix")
    def _check_prefix(self, proposal: dict) -> str:
        value = "/" + proposal["value"].strip("/")
        return value if value == "/" else value + "/"

    @validate("cookie_secret")
    def _check_secret(self, proposal: dict) -> str:
        try:
            if len(bytes.fromhex(proposal["value"])) < 32:
                raise ValueError
        except ValueError:
            raise ValueError(
                "cookie_secret must be at least 32 bytes of hex (try: openssl rand -hex 32)"
            ) from None
        return proposal["value"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.auth: Authenticator | None = None
        self.gateway_backend: Backend | None = None
        self.clusters: ClusterService | None = None
        self.metrics: ServiceMetrics | None = None  # built once the config file is loaded
        self.http_server: HTTPServer | None = None
        self.server_watch: ServerWatchLoop | None = None
        self._stop_requested = asyncio.Event()
        self._started = False

    @catch_config_error
    def initialize(self, argv: list[str] | None = None) -> None:
        redact.install()
        for variable in (
            "JUPYTERHUB_API_TOKEN",
            "JHUB_GATEWAY_COOKIE_SECRET",
            "JHUB_GATEWAY_ENCRYPT_KEYS",
        ):
            for secret in os.environ.get(variable, "").split(";"):
                redact.register_secret(secret.strip())
        super().initialize(argv)
        if self.generate_config:
            return
        if os.path.exists(self.config_file):
            # upstream dask-gateway config files work unchanged (see upstream_compat)
            with upstream_compat.upstream_modules():
                self.load_config_file(self.config_file)
            # on a copy: assigning an equal (mutated) Config would not reload the traits
            translated = copy.deepcopy(self.config)
            for name in upstream_compat.translate(translated):
                self.log.warning("config option %s has no jhub-gateway equivalent, ignored", name)
            self.config = translated
            self.update_config(self.cli_config)  # the command line wins over the file
        elif self.check_config:
            raise ValueError(f"config file {self.config_file} not found")
        level = (
            logging.getLevelName(self.log_level)
            if isinstance(self.log_level, str)
            else self.log_level
        )
        logging.getLogger("jhub_gateway").setLevel(level)  # type: ignore[arg-type]
        if not self.check_config:
            Path(self.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.auth = auth_class(self.authenticator)(parent=self, log=self.log)
        self.metrics = ServiceMetrics(parent=self)
        self.auth.metrics = self.metrics
        self.gateway_backend = backend_class(self.backend)(parent=self, log=self.log)
        self.gateway_backend.registry.observers.append(self.metrics.observe_cluster)
        self.cluster_options = upstream_compat.adapt_cluster_options(
            self.cluster_options, self.gateway_backend.cluster_config_class, self.log
        )
        quotas = UserQuotas(parent=self)
        self.clusters = ClusterService(
            self.gateway_backend, self.cluster_options, quotas, IdlePolicy(parent=self)
        )

    def _cookie_secret(self) -> bytes:
        secret = self._read_cookie_secret()
        redact.register_secret(secret.hex())
        return secret

    def _read_cookie_secret(self) -> bytes:
        if self.cookie_secret:
            return bytes.fromhex(self.cookie_secret)
        env = os.environ.get("JHUB_GATEWAY_COOKIE_SECRET")
        if env:
            return bytes.fromhex(env)
        hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if hub_token:
            # every replica holds the same hub token, so they agree without sharing a file
            return hmac.new(hub_token.encode(), b"jhub-gateway-session", hashlib.sha256).digest()
        path = Path(self.data_dir) / "cookie_secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())

    async def health_checks(self) -> dict[str, dict]:
        assert self.gateway_backend is not None
        # not ready until the backend has re-adopted clusters and published their routes
        checks = {"api": {"ok": True}, "startup": {"ok": self._started}}
        assert self.clusters is not None
        checks.update(await self.clusters.health())
        return checks

    def public_url(self) -> str:
        host, port = _host_port(self.address, "address")
        return f"http://{host}:{port}{self.prefix.rstrip('/')}"

    async def start(self) -> None:  # type: ignore[override]
        assert self.auth is not None and self.gateway_backend is not None
        await self.auth.setup()
        sessions = SessionCookies(self._cookie_secret(), self.session_max_age, path=self.prefix)
        assert self.clusters is not None
        web_app = make_web_app(
            cluster_service=self.clusters,
            health_checks=self.health_checks,
            authenticator=self.auth,
            sessions=sessions,
            prefix=self.prefix,
            max_body_bytes=self.max_body_bytes,
            metrics=self.metrics,
        )
        host, port = _host_port(self.api_listen, "api_listen")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self.http_server = make_http_server(web_app, self.max_body_bytes * 4)
        self.http_server.add_sockets([sock])
        bound = sock.getsockname()
        internal_url = f"http://{bound[0]}:{bound[1]}"
        public = self.public_url()
        context = GatewayContext(
            public_address=self.address,
            api_url=public + "/api",
            internal_url=internal_url,
            data_dir=self.data_dir,
            prefix=self.prefix,
            dashboard_auth_url=internal_url + self.prefix + AUTH_PATH,
        )
        await self.gateway_backend.setup(context)
        self.server_watch = await start_server_watch(
            ServerWatch(parent=self), self.auth, self.clusters
        )
        self._started = True
        self.log.info(
            "jhub-gateway %s serving at %s (api on %s)", __version__, public, internal_url
        )

    async def stop(self) -> None:
        if self.http_server is not None:
            self.http_server.stop()
        if self.server_watch is not None:
            await self.server_watch.stop()
        if self.gateway_backend is not None:
            await self.gateway_backend.cleanup()
        if self.auth is not None:
            await self.auth.cleanup()
        self.log.info("jhub-gateway stopped")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop_requested.set)
        try:
            await self.start()
            await self._stop_requested.wait()
            self.log.info("shutdown requested")
        finally:
            await self.stop()

    def write_generated_config(self) -> None:
        text = self.generate_config_file()
        if os.path.exists(self.config_file):
            raise SystemExit(
                f"{self.config_file} exists; remove it or pass --config to choose another path"
            )
        Path(self.config_file).write_text(text)
        print(f"wrote {self.config_file}")

    def classes_for_config(self) -> list[type]:
        from .auth.jupyterhub import JupyterHubAuthenticator
        from .auth.simple import SimpleAuthenticator
        from .backends.local.backend import LocalBackend
        from .cluster_config import ClusterConfig
        from .proxy import TraefikProxy

        classes: list[type] = [
            GatewayApp,
            UserQuotas,
            ClusterConfig,
            SimpleAuthenticator,
            JupyterHubAuthenticator,
            LocalBackend,
            TraefikProxy,
            ServiceMetrics,
            ServerWatch,
            IdlePolicy,
        ]
        try:  # the kube extra (kubernetes_asyncio) is optional
            from .backends.kube.backend import KubeBackend
            from .backends.kube.config import KubeClusterConfig
        except ImportError:
            return classes
        return [*classes, KubeBackend, KubeClusterConfig]


def _run(main_coroutine: Any) -> None:
    """Run on uvloop when it is installed (noticeably more requests per second)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_coroutine)
    else:
        uvloop.run(main_coroutine)


def main(argv: list[str] | None = None) -> None:
    app = GatewayApp()
    app.classes = app.classes_for_config()
    try:
        app.initialize(argv)
    except (ValueError, TraitError) as exc:
        # a config mistake: say what to fix, no traceback
        raise SystemExit(f"jhub-gateway: configuration error: {exc}") from None
    except Exception as exc:
        if not app.check_config:
            raise
        raise SystemExit(
            f"jhub-gateway: {app.config_file}: {check_config.describe_error(exc, app.config_file)}"
        ) from None
    if app.check_config:
        check_config.main(app)
        return
    if app.generate_config:
        app.write_generated_config()
        return
    try:
        _run(app.run())
    except (OSError, ProxyError, StoreError, ValueError) as exc:
        raise SystemExit(f"jhub-gateway: could not start: {exc}") from None
