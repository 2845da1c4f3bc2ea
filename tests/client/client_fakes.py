"""A small fake gateway server speaking upstream's wire protocol, for client tests.

Its error reasons and messages are the real service's (``tests/client/test_real_service.py``
checks those against the service itself); it exists for what the real service
cannot be made to produce on demand: scripted start progress, a Kubernetes
start failure, a proxy's 502/503, a long poll that never answers.

It runs a tornado app on its own event loop in a thread, so both async tests
and the blocking (sync) client API can talk to it. Clusters follow a script of
states that successive ``?wait`` polls walk through.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from tornado.httpserver import HTTPServer

OPTIONS_SPEC = [
    {"field": "worker_cores", "label": "Worker cores", "default": 1,
     "spec": {"type": "int", "min": 1, "max": 4}},
    {"field": "worker_memory", "label": "Worker memory (GiB)", "default": 2.0,
     "spec": {"type": "float", "min": 0.5, "max": 8}},
    {"field": "image", "label": "Image", "default": "daskdev/dask", "spec": {"type": "string"}},
    {"field": "profile", "label": "Profile", "default": "small",
     "spec": {"type": "select", "options": ["small", "large"]}},
    {"field": "environment", "label": "Env", "default": {}, "spec": {"type": "mapping"}},
    {"field": "debug", "label": "Debug", "default": False, "spec": {"type": "bool"}},
]  # fmt: skip
STATUSES = {"PENDING", "RUNNING", "STOPPING", "STOPPED", "FAILED"}


def make_cluster_cert(name: str = "dask-internal") -> tuple[str, str]:
    """A self-signed cert used as CA, server and client cert (the gateway scheme)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-internal")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.DNSName("dask-internal")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@dataclass
class FakeCluster:
    name: str
    owner: str
    options: dict
    # Each ?wait poll consumes one step: (status, reason, message) or an int
    # HTTP status to answer with instead. The last step repeats.
    script: list = field(default_factory=list)
    status: str = "PENDING"
    reason: str | None = None
    message: str | None = None
    start_time: float = field(default_factory=time.time)
    stop_time: float | None = None
    tls: tuple[str, str] | None = None

    def to_dict(self) -> dict:
        running = self.status == "RUNNING"
        return {
            "name": self.name,
            "dashboard_route": f"/clusters/{self.name}/status" if running else None,
            "status": self.status,
            "start_time": int(self.start_time * 1000),
            "stop_time": None if self.stop_time is None else int(self.stop_time * 1000),
            "options": self.options,
            "tls_cert": self.tls[0] if running and self.tls else None,
            "tls_key": self.tls[1] if running and self.tls else None,
            "reason": self.reason,
            "message": self.message,
            "username": self.owner,  # extra fields the client must ignore
            "workers": 0,
        }


class FakeGateway:
    def __init__(self) -> None:
        self.passwords: dict[str, str] = {"alice": "pw"}
        self.hub_tokens: dict[str, str] = {"hubtoken": "hubuser"}
        self.sessions: dict[str, str] = {}
        self.clusters: dict[str, FakeCluster] = {}
        self.wait_delay = 0.05
        self.cert = make_cluster_cert()
        self.log: list[dict] = []  # one entry per request: method, path, auth, cookie
        self.default_script: list = [("RUNNING", "SchedulerReady", "the scheduler reported in")]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_cluster(self, name: str, owner: str = "alice", script: list | None = None,
                    status: str = "PENDING", **kw: Any) -> FakeCluster:  # fmt: skip
        c = FakeCluster(name, owner, {}, list(script or []), status, tls=self.cert, **kw)
        self.clusters[name] = c
        return c

    # -- thread management ---------------------------------------------------

    def start(self) -> FakeGateway:
        ready = threading.Event()

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            server = HTTPServer(self.app())
            server.add_sockets([sock])
            ready.set()
            await self._stop.wait()
            server.stop()
            await server.close_all_connections()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(30), "fake gateway did not start"
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def app(self) -> tornado.web.Application:
        return tornado.web.Application(
            [
                (r"/api/version", VersionHandler, {"gw": self}),
                (r"/api/v1/options", OptionsHandler, {"gw": self}),
                (r"/api/v1/clusters/", ClustersHandler, {"gw": self}),
                (r"/api/v1/clusters/([^/]+)", ClusterHandler, {"gw": self}),
                (r"/api/v1/clusters/([^/]+)/(scale|adapt)", ScaleHandler, {"gw": self}),
            ]
        )


class BaseHandler(tornado.web.RequestHandler):
    def initialize(self, gw: FakeGateway) -> None:
        self.gw = gw

    def check_xsrf_cookie(self) -> None:
        pass

    def fail(self, status: int, reason: str, message: str) -> None:
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", "Basic")
        self.finish({"error": reason, "message": message})

    def finish_proxy_error(self, status: int) -> None:
        # what Traefik answers while the service restarts: plain text, no JSON reason
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status} Bad Gateway" if status == 502 else f"{status} Service Unavailable")

    def prepare(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        cookie = self.get_cookie("fake-gw-session")
        self.gw.log.append(
            {"method": self.request.method, "path": self.request.path, "auth": auth,
             "cookie": cookie}
        )  # fmt: skip
        if self.request.path == "/api/version":
            return
        self.user = self.gw.sessions.get(cookie or "")
        if self.user is None:
            self.user = self._check_header(auth)
            if self.user is None:
                message = "wrong user name or password" if auth else "authentication required"
                self.fail(401, "unauthorized", message)
                return
            session = uuid.uuid4().hex
            self.gw.sessions[session] = self.user
            self.set_cookie("fake-gw-session", session)

    def _check_header(self, auth: str) -> str | None:
        kind, _, value = auth.partition(" ")
        if kind.lower() == "basic":
            user, _, password = base64.b64decode(value).decode().partition(":")
            return user if self.gw.passwords.get(user, "") == password else None
        if kind.lower() == "jupyterhub":
            return self.gw.hub_tokens.get(value)
        return None

    def body(self) -> Any:
        return json.loads(self.request.body or b"null")

    def owned(self, name: str) -> FakeCluster | None:
        c = self.gw.clusters.get(name)
        if c is None:
            self.fail(404, "cluster_not_found", f"no cluster named {name!r}")
        elif c.owner != self.user:
            self.fail(403, "not_owner", f"cluster {name!r} belongs to another user")
        else:
            return c
        return None


class VersionHandler(BaseHandler):
    def get(self) -> None:
        self.finish({"version": "fake-1.0"})


class OptionsHandler(BaseHandler):
    def get(self) -> None:
        self.finish({"cluster_options": OPTIONS_SPEC})


class ClustersHandler(BaseHandler):
    def get(self) -> None:
        wanted = self.get_argument("status", "pending,running").upper().split(",")
        if not set(wanted) <= STATUSES:
            self.fail(422, "invalid", f"unknown status in {wanted}")
            return
        self.finish(
            {n: c.to_dict() for n, c in self.gw.clusters.items()
             if c.owner == self.user and c.status in wanted}
        )  # fmt: skip

    def post(self) -> None:
        options = (self.body() or {}).get("cluster_options", {})
        known = {s["field"] for s in OPTIONS_SPEC}
        unknown = sorted(set(options) - known)
        if unknown:
            self.fail(422, "invalid", f"unknown cluster options: {unknown}")
            return
        if options.get("image") == "explode":
            self.fail(500, "internal_error", "the gateway hit an unexpected error; see its log")
            return
        name = uuid.uuid4().hex[:12]
        c = self.gw.add_cluster(name, self.user, list(self.gw.default_script))
        c.options = options
        self.set_status(201)
        self.finish({"name": name})


class ClusterHandler(BaseHandler):
    async def get(self, name: str) -> None:
        if name == "teapot":
            self.fail(418, "Teapot", "no mapping for this status")
            return
        c = self.owned(name)
        if c is None:
            return
        if self.get_argument("wait", None) is not None and c.script:
            await asyncio.sleep(self.gw.wait_delay)
            step = c.script.pop(0) if len(c.script) > 1 else c.script[0]
            if isinstance(step, int):
                self.finish_proxy_error(step)
                return
            c.status, c.reason, c.message = step
        self.finish(c.to_dict())

    def delete(self, name: str) -> None:
        c = self.gw.clusters.get(name)
        if c is not None and c.owner == self.user:
            c.status, c.reason, c.stop_time = "STOPPED", "StopRequested", time.time()
            c.script = []
        self.set_status(204)
        self.finish()


class ScaleHandler(BaseHandler):
    def post(self, name: str, op: str) -> None:
        c = self.owned(name)
        if c is None:
            return
        if c.status != "RUNNING":
            self.fail(409, "not_running", f"cluster {name!r} is {c.status}, not RUNNING")
            return
        body = self.body() or {}
        if op == "scale":
            count = body.get("count")
            if not isinstance(count, int) or count < 0:
                self.fail(422, "invalid", f"count must be a non-negative integer, got {count!r}")
                return
            if count > 5:
                self.finish({"ok": False, "msg": "Scale request clamped to 5 workers"})
                return
        self.finish({"ok": True, "msg": None})
