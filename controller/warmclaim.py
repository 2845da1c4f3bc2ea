"""The controller's side of a warm pod's claim channel (see ``jhub_gateway.runtime.warm_pod``).

Mutual TLS with the warm pod's own certificate and key, from its claim Secret:
the certificate is pinned (it is the only CA trusted), the key proves the
claimant. One JSON line goes out with the cluster's credentials and scheduler
arguments; one comes back once the scheduler answers its health check.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .secrets import ClusterCredentials

MAX_REPLY = 64 * 1024
CONNECT_TIMEOUT = 5.0


class ClaimFailed(Exception):
    """The warm pod refused the claim, broke the connection or its scheduler did not start."""


@dataclass(frozen=True)
class ClaimRequest:
    cluster_name: str
    api_url: str
    credentials: ClusterCredentials
    args: tuple[str, ...]

    def __repr__(self) -> str:
        return f"ClaimRequest({self.cluster_name!r}, <credentials redacted>)"

    def encode(self) -> bytes:
        message = {
            "cluster_name": self.cluster_name,
            "api_url": self.api_url,
            "api_token": self.credentials.api_token,
            "tls_cert": self.credentials.tls_cert,
            "tls_key": self.credentials.tls_key,
            "args": list(self.args),
        }
        return json.dumps(message).encode() + b"\n"


def client_context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """Trust only the warm pod's certificate; present its key (blocking: file I/O)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # pods have no stable names; the pin is the certificate
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=cert_pem)
    with tempfile.TemporaryDirectory(prefix="warm-claim-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        for path, data in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data.encode())
            finally:
                os.close(fd)
        context.load_cert_chain(str(cert), str(key))
    return context


async def claim(
    host: str, port: int, cert_pem: str, key_pem: str, request: ClaimRequest, timeout: float
) -> None:
    """Claim the warm pod at ``host:port``; returns once its scheduler is up."""
    context = await asyncio.to_thread(client_context, cert_pem, key_pem)
    try:
        async with asyncio.timeout(timeout):
            # a network that drops the packets (a NetworkPolicy) must not cost the whole timeout
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=""),
                min(timeout, CONNECT_TIMEOUT),
            )
            try:
                writer.write(request.encode())
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError:
        raise ClaimFailed(f"no answer within {timeout:g} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise ClaimFailed(f"claim connection failed: {exc.__class__.__name__}") from None
    reply = _parse(line)
    if reply.get("status") != "started":
        raise ClaimFailed(f"claim {reply.get('status')}: {reply.get('message', '')}")


def _parse(line: bytes) -> dict[str, Any]:
    if not line or len(line) > MAX_REPLY:
        raise ClaimFailed("the warm pod closed the claim without an answer")
    try:
        reply = json.loads(line)
    except ValueError:
        raise ClaimFailed("the warm pod's answer is not JSON") from None
    if not isinstance(reply, dict):
        raise ClaimFailed("the warm pod's answer is not a JSON object")
    return reply
