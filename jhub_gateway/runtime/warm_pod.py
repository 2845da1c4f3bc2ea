"""A warm scheduler: ``python -m jhub_gateway.runtime.warm_pod``, claimed once, then a scheduler.

The Kubernetes controller keeps a few of these running so that a new cluster
skips pod scheduling, interpreter start and ``import distributed``. Before its
claim the process has imported distributed, its scheduler CLI and the gateway
runtime (``jhub_gateway.runtime.preload``), answers ``/api/health`` on the
gateway API address (the pod is Ready: warm and claimable) and listens for one
claim on ``--claim-address``.

The claim channel is mutual TLS with the warm pod's own key and certificate
(its claim Secret, minted by the controller, which pins the certificate): a
client without that key fails the handshake. The claim is one JSON line with
the cluster's credentials (TLS certificate and key, api token), its name, the
api URL and the scheduler's arguments (a cold pod's args after its command).
The first valid claim wins and the listener closes; any other connection is
refused. The process then

1. writes the credentials to files it creates exclusively (``O_EXCL |
   O_NOFOLLOW``, mode 0600) in a new private directory;
2. points the environment at them as a cold pod's env does (dask's TLS
   settings, ``DASK_GATEWAY_API_TOKEN``/``_CLUSTER_NAME``) and re-reads dask's
   config;
3. installs the dashboard guard for every scheduler HTTP server created from now
   on (a cold pod's preload does this at import, when the token is not known
   here yet), and frees the health port;
4. runs ``dask scheduler`` with the claimed arguments in this interpreter, and
   answers the claim once the scheduler's gateway API answers ``/api/health``
   (what a cold pod's readiness probe waits for).

Nothing is ever returned to the pool: after its claim the process is that
cluster's scheduler until it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dask.config
from distributed.cli import dask_scheduler

from .. import private_files, redact
from ..dashboard_credential import dashboard_credential
from ..tls import tls_env
from ..warm_claim_message import Claim, WarmClaimError, parse_warm_claim
from . import dashboard
from .claim import import_modules
from .preload import ENV_API_TOKEN, ENV_API_URL, ENV_CLUSTER_NAME

log = logging.getLogger("distributed.jhub_gateway.warm_pod")

MAX_CLAIM_BYTES = 256 * 1024
HANDSHAKE_TIMEOUT = 10.0
START_TIMEOUT = 300.0
CERT_FILE, KEY_FILE, TOKEN_FILE = "tls.crt", "tls.key", "api-token"
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(word: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of one argument (``$$`` is a ``$``)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR.sub(sub, word)


def write_credentials(claim: Claim, parent: str | None = None) -> dict[str, str]:
    """Write the claim's secrets into a new private directory; returns the env pointing at them."""
    directory = Path(tempfile.mkdtemp(prefix="dask-claim-", dir=parent))  # mode 0700
    cert, key, token = directory / CERT_FILE, directory / KEY_FILE, directory / TOKEN_FILE
    for path, secret in ((cert, claim.tls_cert), (key, claim.tls_key), (token, claim.api_token)):
        private_files.write_new(path, secret)
    return {
        **tls_env(str(cert), str(key)),
        ENV_API_TOKEN: str(token),
        ENV_CLUSTER_NAME: claim.cluster_name,
    }


def split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise SystemExit(f"warm_pod: invalid address {value!r} (HOST:PORT)")
    return host.strip("[]"), int(port)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        ok = self.path.split("?", 1)[0] == "/api/health"
        body = b'{"status": "warm"}' if ok else b'{"error": "not_found"}'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every second: no access log."""


@dataclass
class ClaimServer:
    """Accepts connections until one valid claim arrives; each handshake in its own thread."""

    address: tuple[str, int]
    context: ssl.SSLContext
    claimed: threading.Event = field(default_factory=threading.Event)
    claim: Claim | None = None
    conn: ssl.SSLSocket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> tuple[Claim, ssl.SSLSocket]:
        listener = socket.create_server(self.address)
        log.info("Warm scheduler waiting for its claim on port %d", self.address[1])
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        self.claimed.wait()
        # A second claim now finds nothing to connect to (shutdown: accept() returns).
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        assert self.claim is not None and self.conn is not None
        return self.claim, self.conn

    def _accept(self, listener: socket.socket) -> None:
        while not self.claimed.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed after the claim
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        raw.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            log.info("Refused a claim connection: TLS handshake failed")
            raw.close()
            return
        try:
            claim = parse_warm_claim(_read_line(conn))
        except (WarmClaimError, OSError) as exc:
            log.info("Refused a claim: %s", exc)
            _reply(conn, {"status": "refused", "message": str(exc)})
            conn.close()
            return
        with self._lock:
            first = not self.claimed.is_set()
            if first:
                self.claim, self.conn = claim, conn
                self.claimed.set()
        if not first:
            _reply(conn, {"status": "refused", "message": "already claimed"})
            conn.close()


def _read_line(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_CLAIM_BYTES:
            raise WarmClaimError("the claim is too large")
    return data


def _reply(conn: ssl.SSLSocket, message: dict[str, Any]) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """Mutual TLS: only a client holding the claim key (the certificate is its own CA)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cert)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _report_start(conn: ssl.SSLSocket, health_url: str, scheduler_done: threading.Event) -> None:
    """Answer the claim once the scheduler's gateway API is healthy (or give up)."""
    deadline = time.monotonic() + START_TIMEOUT
    status: dict[str, Any] = {"status": "failed", "message": "the scheduler did not start"}
    while time.monotonic() < deadline and not scheduler_done.is_set():
        try:
            with urllib.request.urlopen(health_url, timeout=2) as resp:
                if resp.status == 200:
                    status = {"status": "started"}
                    break
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    _reply(conn, status)
    conn.close()


def become_scheduler(claim: Claim, conn: ssl.SSLSocket, health: tuple[str, int]) -> None:
    """Steps 1-4 of the module docstring; runs the scheduler until it exits."""
    redact.install()
    redact.register_secret(claim.api_token)
    os.environ.update(write_credentials(claim))
    # The pod's env names the api as cluster DNS (or its kubelet) resolves it; a pod
    # without one takes the controller's URL (the same setting).
    os.environ.setdefault(ENV_API_URL, claim.api_url)
    dask.config.refresh()  # the TLS files and anything else set through the env above
    dashboard.guard_from_creation(dashboard_credential(claim.api_token))
    args = [expand(a, os.environ) for a in claim.args]
    done = threading.Event()
    host, port = health
    reporter = threading.Thread(
        target=_report_start,
        args=(conn, f"http://{host}:{port}/api/health", done),
        daemon=True,
    )
    reporter.start()
    log.info("Warm scheduler claimed by cluster %s", claim.cluster_name)
    try:
        dask_scheduler.main.main(args=args, prog_name="dask scheduler", standalone_mode=True)
    finally:
        done.set()


def _prewarm() -> None:
    """Import now what the scheduler would import on its start path (and the dashboard)."""
    # the HTTP routes of the scheduler's server, imported in Scheduler.__init__; the bokeh
    # dashboard, attached late (see dashboard.py): here there is idle time
    import_modules("distributed.scheduler.http.routes", (dashboard.DASHBOARD_MODULE,))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jhub_gateway.runtime.warm_pod")
    parser.add_argument("--claim-address", required=True, help="HOST:PORT of the claim listener")
    parser.add_argument("--health-address", required=True,
                        help="HOST:PORT answering /api/health until the claim")  # fmt: skip
    parser.add_argument("--claim-cert", required=True, help="PEM certificate of the claim channel")
    parser.add_argument("--claim-key", required=True, help="PEM key of the claim channel")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    context = server_context(options.claim_cert, options.claim_key)
    _prewarm()
    health_address = split_address(options.health_address)
    health = ThreadingHTTPServer(health_address, _Health)
    threading.Thread(target=health.serve_forever, args=(0.02,), daemon=True).start()
    claim, conn = ClaimServer(split_address(options.claim_address), context).serve()
    health.shutdown()
    health.server_close()  # the scheduler's gateway API binds this port next
    become_scheduler(claim, conn, health_address)


if __name__ == "__main__":
    main(sys.argv[1:])
