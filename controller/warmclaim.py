"""The controller's side of a warm pod's claim channel (see ``jhub_gateway.runtime.warm_pod``).

Mutual TLS with the warm pod's own certificate and key, from its claim Secret:
the certificate is pinned (it is the only CA trusted), the key proves the
claimant. One JSON line goes out with the cluster's credentials and scheduler
arguments; one comes back once the scheduler answers its health check.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from pathlib import Path
from typing import Any

from jhub_gateway import private_files
from jhub_gateway.warm_claim_message import Claim

from .secrets import ClusterCredentials

MAX_REPLY = 64 * 1024
CONNECT_TIMEOUT = 5.0


class ClaimFailed(Exception):
    """The warm pod refused the claim, broke the connection or its scheduler did not start."""


def claim_message(
    cluster_name: str, api_url: str, credentials: ClusterCredentials, args: tuple[str, ...]
) -> Claim:
    """What a warm pod needs to become ``cluster_name``'s scheduler."""
    return Claim(
        cluster_name=cluster_name,
        api_url=api_url,
        api_token=credentials.api_token,
        tls_cert=credentials.tls_cert,
        tls_key=credentials.tls_key,
        args=args,
    )


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
            private_files.write_new(path, data)
        context.load_cert_chain(str(cert), str(key))
    return context


async def claim(
    host: str, port: int, cert_pem: str, key_pem: str, request: Claim, timeout: float
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
