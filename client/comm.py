"""The ``gateway://host:port/<cluster>`` comm: TLS to a scheduler via an SNI proxy.

The proxy (Traefik or the local one) routes raw TLS by server name, so we open
TCP to the proxy and start TLS with SNI ``daskgateway-<cluster>``; the TLS
session itself ends at the scheduler. Connector only: nothing listens on a
gateway address.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from distributed.comm.core import Comm, Connector, FatalCommClosedError
from distributed.comm.registry import Backend, backends
from distributed.comm.tcp import (
    MAX_BUFFER_SIZE,
    TLS,
    convert_stream_closed_error,
    get_stream_address,
)
from distributed.utils import ensure_ip, get_ip
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

SNI_PREFIX = "daskgateway-"


def parse_gateway_address(address: str) -> tuple[str, int, str]:
    """Split ``[gateway://]host:port/<cluster>`` into ``(host, port, cluster)``."""
    if not address.startswith("gateway://"):
        address = "gateway://" + address
    parts = urlsplit(address)
    cluster = parts.path.strip("/")
    if not cluster:
        raise ValueError(f"gateway address {address!r} lacks the /<cluster name> part")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(f"gateway address {address!r} needs an explicit host:port")
    return parts.hostname, port, cluster


def sni_for(cluster: str) -> str:
    """The TLS server name the proxy routes on for ``cluster``."""
    return SNI_PREFIX + cluster


class GatewayConnector(Connector):
    # One resolver-backed client per process is enough; tornado's default
    # resolver is non-blocking.
    _client = TCPClient()

    async def connect(self, address: str, deserialize: bool = True, **connection_args: Any) -> Comm:
        host, port, cluster = parse_gateway_address(address)
        ctx = connection_args.get("ssl_context")
        if not isinstance(ctx, ssl.SSLContext):
            raise TypeError(
                "gateway:// connections need a `ssl_context` (pass the cluster's "
                f"security, e.g. cluster.security); got {ctx!r}"
            )
        try:
            stream = await self._client.connect(host, port, max_buffer_size=int(MAX_BUFFER_SIZE))
            stream = await stream.start_tls(
                False, ssl_options=ctx, server_hostname=sni_for(cluster)
            )
            # tornado may hand back a stream that failed during the handshake
            # without raising.
            if stream.closed() and stream.error:
                raise StreamClosedError(stream.error)
        except StreamClosedError as exc:
            convert_stream_closed_error(self, exc)
        except ssl.SSLError as exc:
            raise FatalCommClosedError(
                f"TLS handshake with cluster {cluster!r} via {host}:{port} failed: {exc}"
            ) from exc
        local = "tls://" + get_stream_address(stream)
        return TLS(stream, local, "gateway://" + address.removeprefix("gateway://"), deserialize)


class GatewayBackend(Backend):
    """distributed comm backend for the ``gateway`` scheme (entry point target)."""

    def get_connector(self) -> Connector:
        return GatewayConnector()

    def get_listener(self, loc: str, handle_comm: Any, deserialize: bool, **kwargs: Any) -> Any:
        raise NotImplementedError("gateway:// addresses cannot be listened on")

    def get_address_host(self, loc: str) -> str:
        return parse_gateway_address(loc)[0]

    def get_address_host_port(self, loc: str) -> tuple[str, int]:
        host, port, _ = parse_gateway_address(loc)
        return host, port

    def resolve_address(self, loc: str) -> str:
        host, port, cluster = parse_gateway_address(loc)
        return f"{ensure_ip(host)}:{port}/{cluster}"

    def get_local_address_for(self, loc: str) -> str:
        host, port, cluster = parse_gateway_address(loc)
        return f"{get_ip(ensure_ip(host))}:{port}/{cluster}"


def register() -> None:
    """Make the scheme usable even when package metadata (the entry point) is absent."""
    backends.setdefault("gateway", GatewayBackend())
