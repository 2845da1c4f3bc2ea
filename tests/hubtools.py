"""A real JupyterHub (with configurable-http-proxy) for tests, plus a counting HTTP proxy.

Usage::

    async with run_hub(tmp_path, services=[{"name": "gw", "url": ...}],
                       users={"alice": {"groups": ["g"]}}, roles=[...]) as hub:
        token = await hub.token_for("alice")

Hub start takes ~5-6 s on an idle machine: share one hub per test module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from tornado import httpserver, netutil, web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.polling import until

ADMIN_SERVICE = "hubtools-admin"


def trivial_spawner_config(root: Path) -> str:
    """Hub config for a spawner whose "server" is a plain HTTP server per user: the
    hub counts it as running, so a test can start and stop servers quickly."""
    return f"""
from jupyterhub.spawner import SimpleLocalProcessSpawner

class TrivialSpawner(SimpleLocalProcessSpawner):
    # any HTTP answer tells the hub the server is up; no notebook stack needed
    def get_args(self):
        return [str(self.port), "--bind", "127.0.0.1"]

c.JupyterHub.spawner_class = TrivialSpawner
c.Spawner.cmd = [{sys.executable!r}, "-m", "http.server"]
c.Spawner.http_timeout = 60
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/home/{{username}}"
"""


START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chp_command() -> str:
    """configurable-http-proxy: $CHP_BIN, the venv's npm prefix, or PATH."""
    candidates = [
        os.environ.get("CHP_BIN", ""),
        str(Path(sys.prefix) / "chp/node_modules/.bin/configurable-http-proxy"),
        shutil.which("configurable-http-proxy") or "",
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError(
        "configurable-http-proxy not found: npm install --prefix "
        f"{sys.prefix}/chp configurable-http-proxy@5 (or set CHP_BIN)"
    )


class HubError(RuntimeError):
    """A hub API call in the harness failed."""


class Hub:
    """A JupyterHub process in ``root``; stop()/start() keep its database and ports."""

    def __init__(
        self,
        root: Path,
        *,
        services: Iterable[Mapping[str, Any]] = (),
        users: Mapping[str, Mapping[str, Any]] | Iterable[str] = (),
        roles: Iterable[Mapping[str, Any]] = (),
        extra_config: str = "",
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port, self.hub_port, self.proxy_api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.log_path = root / "hub.log"
        self.admin_token = secrets.token_hex(32)
        self._services = [dict(s) for s in services]
        for svc in self._services:
            svc.setdefault("api_token", secrets.token_hex(32))
        self._services.append({"name": ADMIN_SERVICE, "api_token": self.admin_token})
        users = dict(users) if isinstance(users, Mapping) else {name: {} for name in users}
        self._users = {name: dict(spec) for name, spec in users.items()}
        self._roles = [dict(r) for r in roles]
        self._roles.append({"name": "admin", "services": [ADMIN_SERVICE]})
        self._tokens: dict[str, tuple[str, str]] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._children: set[int] = set()
        self._session: aiohttp.ClientSession | None = None
        self.config_path = root / "jupyterhub_config.py"
        self.config_path.write_text(self._config(extra_config))

    def _config(self, extra: str) -> str:
        groups: dict[str, dict[str, list[str]]] = {}
        for name, spec in self._users.items():
            for group in spec.get("groups", ()):
                groups.setdefault(group, {"users": []})["users"].append(name)
        admins = {name for name, spec in self._users.items() if spec.get("admin")}
        root = self.root
        return f"""\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {self.hub_port}
c.JupyterHub.db_url = "sqlite:///{root / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = "{root / "cookie_secret"}"
c.JupyterHub.pid_file = "{root / "hub.pid"}"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.log_level = "INFO"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {admins!r}
c.Authenticator.allowed_users = {set(self._users)!r}
c.JupyterHub.load_groups = {groups!r}
c.JupyterHub.services = {self._services!r}
c.JupyterHub.load_roles = {self._roles!r}
c.ConfigurableHTTPProxy.command = [{chp_command()!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(16)!r}
c.ConfigurableHTTPProxy.pid_file = "{root / "proxy.pid"}"
{extra}
"""

    def service_token(self, name: str) -> str:
        for svc in self._services:
            if svc["name"] == name:
                return svc["api_token"]
        raise KeyError(f"no service {name!r} in this hub's config")

    # -- process -------------------------------------------------------------

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        if self._proc is not None and self._proc.returncode is None:
            raise RuntimeError("hub already running")
        env = dict(os.environ)
        env.pop("JUPYTERHUB_API_TOKEN", None)
        env["PATH"] = os.pathsep.join([str(Path(chp_command()).parent), env.get("PATH", "")])
        log = await asyncio.to_thread(open, self.log_path, "ab")
        with log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jupyterhub",
                "-f",
                str(self.config_path),
                cwd=self.root,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await until(
                self._ready, timeout, 0.2, what=f"JupyterHub at {self.url} (log {self.log_path})"
            )
        except TimeoutError as exc:
            # CI keeps only pytest's output: the hub's own words must be in it
            await self.stop()
            raise TimeoutError(f"{exc}; its log ends:\n{self.log_tail()}") from None
        except BaseException:
            await self.stop()
            raise
        self._remember_children()

    async def _ready(self) -> bool:
        assert self._proc is not None and self._session is not None
        if self._proc.returncode is not None:
            raise RuntimeError(
                f"jupyterhub exited with {self._proc.returncode}:\n{self.log_tail()}"
            )
        for url in (self.api_url + "/", self.url + "/hub/api/"):
            try:
                async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status != 200:
                        return False
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False
        return True

    def _remember_children(self) -> None:
        # the proxy runs in its own session: remember it so a crashed hub cannot orphan it
        if self._proc is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self._proc.pid).children(recursive=True):
                self._children.add(child.pid)

    async def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM the hub (it stops its proxy and services), then kill whatever is left."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._remember_children()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        for pid in list(self._children):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
            self._children.discard(pid)
        self._proc = None

    async def close(self) -> None:
        await self.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- hub REST API ----------------------------------------------------------

    async def api(
        self, method: str, path: str, *, json: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        """Call ``{api_url}{path}`` (admin token by default); returns (status, parsed JSON or None)."""
        assert self._session is not None, "hub not started"
        headers = {"Authorization": f"token {token or self.admin_token}"}
        async with self._session.request(
            method, self.api_url + path, json=json, headers=headers
        ) as r:
            text = await r.text()
            try:
                data = await r.json(content_type=None) if text else None
            except ValueError:
                data = text
            return r.status, data

    async def _ok(self, method: str, path: str, json: Any = None) -> Any:
        status, data = await self.api(method, path, json=json)
        if status >= 300:
            raise HubError(f"{method} {path} -> {status}: {data}")
        return data

    async def create_user(self, name: str, admin: bool = False, groups: Iterable[str] = ()) -> None:
        await self._ok("POST", f"/users/{name}", {"admin": admin})
        for group in groups:
            status, _ = await self.api("GET", f"/groups/{group}")
            if status == 404:
                await self._ok("POST", f"/groups/{group}", {"users": [name]})
            else:
                await self._ok("POST", f"/groups/{group}/users", {"users": [name]})

    async def token_for(
        self, user: str, scopes: Iterable[str] | None = None, expires_in: int | None = None
    ) -> str:
        """A new API token of ``user`` (default: all the user's permissions)."""
        body: dict[str, Any] = {"note": "hubtools"}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if expires_in is not None:
            body["expires_in"] = expires_in
        model = await self._ok("POST", f"/users/{user}/tokens", body)
        self._tokens[model["token"]] = (user, model["id"])
        return model["token"]

    async def revoke(self, token: str) -> None:
        user, token_id = self._tokens.pop(token)
        await self._ok("DELETE", f"/users/{user}/tokens/{token_id}")


@contextlib.asynccontextmanager
async def run_hub(
    tmp_path: Path,
    *,
    services: Iterable[Mapping[str, Any]] = (),
    users: Mapping[str, Mapping[str, Any]] | Iterable[str] = (),
    roles: Iterable[Mapping[str, Any]] = (),
    extra_config: str = "",
) -> AsyncIterator[Hub]:
    """Start a real hub in ``tmp_path/hub``; always stops it and its proxy on exit.

    ``users`` maps names to ``{"admin": bool, "groups": [...]}`` (or is a list of
    names); ``services`` are JupyterHub service dicts (``api_token`` generated
    when missing, see ``hub.service_token(name)``); ``roles`` go to ``load_roles``.
    """
    hub = Hub(
        tmp_path / "hub", services=services, users=users, roles=roles, extra_config=extra_config
    )
    try:
        await hub.start()
        yield hub
    finally:
        await hub.close()


class _Forward(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

    def initialize(self, proxy: CountingProxy) -> None:
        self.proxy = proxy

    def check_xsrf_cookie(self) -> None:
        return

    async def _forward(self) -> None:
        self.proxy.counts[self.request.path] += 1
        if self.proxy.fail_with is not None:
            self.set_status(self.proxy.fail_with)
            self.finish("failure injected by CountingProxy")
            return
        headers = {k: v for k, v in self.request.headers.items() if k.lower() != "host"}
        request = HTTPRequest(
            self.proxy.target + self.request.uri,
            method=self.request.method,
            headers=headers,
            body=self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None,
            follow_redirects=False,
            request_timeout=30,
        )
        try:
            response = await self.proxy.client.fetch(request, raise_error=False)
        except OSError:
            self.set_status(502)
            self.finish("upstream unreachable")
            return
        if response.code == 599:
            self.set_status(502)
            self.finish("upstream unreachable")
            return
        self.set_status(response.code, response.reason)
        for name in ("Content-Type", "Location"):
            if name in response.headers:
                self.set_header(name, response.headers[name])
        self.finish(response.body or b"")

    get = post = put = patch = delete = head = options = _forward


class CountingProxy:
    """An HTTP reverse proxy in front of ``target`` that counts requests per path.

    Point a component at ``proxy.url`` instead of the real server to count its
    round trips; set ``fail_with`` to an HTTP status to answer every request with it.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.counts: collections.Counter[str] = collections.Counter()
        self.fail_with: int | None = None
        self.url = ""
        self.client = AsyncHTTPClient(force_instance=True)
        self._server: httpserver.HTTPServer | None = None

    def count(self, pattern: str) -> int:
        """Requests so far whose path matches the regular expression ``pattern``."""
        return sum(n for path, n in self.counts.items() if re.search(pattern, path))

    async def __aenter__(self) -> CountingProxy:
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        app = web.Application([(r".*", _Forward, {"proxy": self})])
        self._server = httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
        self.client.close()


def managed_service(name: str, port: int, data_dir: Path, *extra_args: str) -> dict:
    """The hub's service entry that runs our gateway (JupyterHub auth) as a managed service."""
    return {
        "name": name,
        "url": f"http://127.0.0.1:{port}",
        "display": True,
        "oauth_no_confirm": True,
        "command": [
            sys.executable,
            "-m",
            "jhub_gateway.hub_service",
            "--auth",
            "jupyterhub",
            "--address",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
            *extra_args,
        ],
    }


async def gateway_healthy(address: str) -> bool:
    """Whether the gateway at ``address`` (through the hub) answers its health check."""
    try:
        # no redirects: before the hub routes the service, the hub answers with its login page
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{address}/api/health", allow_redirects=False) as r,
        ):
            return r.status == 200 and (await r.json()).get("status") == "pass"
    except aiohttp.ClientError:
        return False
