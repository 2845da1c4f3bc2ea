"""Real backends for proxy tests: tornado apps, a forward-auth app, TLS servers."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tornado import httpserver, web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from jhub_gateway.dashboard_credential import HEADER as CREDENTIAL_HEADER

#: what the test forward-auth hands Traefik for the dashboard on success
ISSUED_CREDENTIAL = "issued-by-forward-auth"


class _Echo(web.RequestHandler):
    def get(self, *args: str) -> None:
        echo = {"who": self.settings["who"], "path": self.request.path}
        credential = self.request.headers.get(CREDENTIAL_HEADER)
        if credential is not None:
            echo["credential"] = credential
        if self.get_query_argument("headers", None) is not None:
            echo["headers"] = sorted(self.request.headers)
        self.write(echo)


class _WebSocketEcho(websocket.WebSocketHandler):
    """What a dashboard's bokeh socket needs from the proxy: an upgrade, then frames."""

    def on_message(self, message: str | bytes) -> None:
        self.write_message(f"{self.settings['who']}: {message!s}")


class _Auth(web.RequestHandler):
    """Allows ``token good`` or cookie ``session=good``; 403 for other credentials."""

    def get(self) -> None:
        self.settings["seen"].append(self.request.headers.get("X-Forwarded-Uri"))
        auth = self.request.headers.get("Authorization")
        cookie = self.request.headers.get("Cookie")
        if auth == "token good" or cookie == "session=good":
            self.set_header(CREDENTIAL_HEADER, ISSUED_CREDENTIAL)
            return
        self.set_status(403 if (auth or cookie) else 401)
        self.finish({"error": "denied"})


def serve(app: web.Application) -> tuple[httpserver.HTTPServer, str]:
    server = httpserver.HTTPServer(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server.add_sockets([sock])
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def echo_app(who: str) -> web.Application:
    return web.Application([(r"/ws", _WebSocketEcho), (r"/.*", _Echo)], who=who)


def auth_app(seen: list) -> web.Application:
    return web.Application([(r"/auth", _Auth)], seen=seen)


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def tls_backend(tmp: Path, tag: str, sni: str) -> tuple[asyncio.Server, str, Path]:
    """A TLS server that greets with ``tag`` and then echoes lines."""
    cert, key = self_signed(tmp, sni)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{tag}\n".encode())
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    return server, f"127.0.0.1:{port}", cert


async def tls_connect(
    address: str, name: str, cafile: Path
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect like the gateway:// comm does: TLS with SNI ``daskgateway-<name>``."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False  # as dask's comm: the cluster's own CA is the check
    host, port = address.rsplit(":", 1)
    return await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=ctx, server_hostname=f"daskgateway-{name}"),
        30,
    )


async def greeting(address: str, name: str, cafile: Path) -> str:
    reader, writer = await tls_connect(address, name, cafile)
    try:
        return (await asyncio.wait_for(reader.readline(), 30)).decode().strip()
    finally:
        writer.close()


async def get(url: str, **headers: str) -> HTTPResponse:
    """GET returning the response for any status (no raise)."""
    client = AsyncHTTPClient()
    try:
        return await client.fetch(url, headers=headers, request_timeout=30, raise_error=False)
    except HTTPClientError as exc:  # pragma: no cover - raise_error=False covers HTTP codes
        assert exc.response is not None
        return exc.response


def body(resp: HTTPResponse) -> dict:
    return json.loads(resp.body)
