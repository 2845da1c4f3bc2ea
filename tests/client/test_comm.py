"""The gateway:// comm: SNI on a real TLS server, and a real scheduler behind a proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile

import pytest
from distributed import Scheduler, Worker
from distributed.comm import connect
from distributed.comm.core import CommClosedError
from distributed.comm.registry import get_backend
from distributed.security import Security

from jhub_gateway.client import BasicAuth, Gateway, GatewaySecurity
from jhub_gateway.client.comm import GatewayBackend, GatewayConnector, parse_gateway_address
from tests.client.client_fakes import make_cluster_cert


@pytest.fixture(scope="module")
def cert():
    return make_cluster_cert()


def test_address_parsing_and_backend():
    assert parse_gateway_address("gateway://gw.example:8786/abc") == ("gw.example", 8786, "abc")
    assert parse_gateway_address("127.0.0.1:80/ns.abc/") == ("127.0.0.1", 80, "ns.abc")
    with pytest.raises(ValueError, match="cluster name"):
        parse_gateway_address("gateway://gw.example:8786")
    with pytest.raises(ValueError, match="host:port"):
        parse_gateway_address("gateway://gw.example/abc")
    # distributed finds us through the entry point (upstream's dask_gateway, when
    # imported in the same process, registers its own compatible backend instead)
    from importlib.metadata import entry_points

    (entry,) = entry_points(group="distributed.comm.backends", name="gateway")
    assert entry.load() is GatewayBackend
    assert get_backend("gateway") is not None
    backend = GatewayBackend()
    assert backend.resolve_address("localhost:8786/abc") == "127.0.0.1:8786/abc"
    assert backend.get_address_host_port("gw.example:1/abc") == ("gw.example", 1)
    with pytest.raises(NotImplementedError):
        backend.get_listener("gw:1/abc", None, True)


def test_security_keeps_no_files_and_hides_keys(cert):
    before = set(os.listdir(tempfile.gettempdir()))
    sec = GatewaySecurity(tls_key=cert[1], tls_cert=cert[0])
    args = sec.get_connection_args("client")
    assert isinstance(args["ssl_context"], ssl.SSLContext)
    assert args["require_encryption"] is True
    assert sec.get_connection_args("worker")["ssl_context"] is args["ssl_context"]
    assert set(os.listdir(tempfile.gettempdir())) == before
    assert "PRIVATE" not in repr(sec) and "PRIVATE" not in sec._repr_html_()


async def _tls_server(cert, tmp_path, seen):
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_file.write_text(cert[0])
    key_file.write_text(cert[1])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(cadata=cert[0])
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.sni_callback = lambda sslobj, name, _ctx: seen.append(name)

    async def handle(reader, writer):
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)


async def test_connector_sends_cluster_name_as_sni(cert, tmp_path):
    seen: list[str] = []
    server = await _tls_server(cert, tmp_path, seen)
    port = server.sockets[0].getsockname()[1]
    ctx = GatewaySecurity(tls_key=cert[1], tls_cert=cert[0]).get_connection_args("client")
    try:
        comm = await GatewayConnector().connect(f"127.0.0.1:{port}/my-cluster", **ctx)
        assert seen == ["daskgateway-my-cluster"]
        assert comm.peer_address == f"gateway://127.0.0.1:{port}/my-cluster"
        assert comm.local_address.startswith("tls://127.0.0.1:")
        await comm.close()

        # A different cluster's credentials fail the handshake with a comm error.
        other = make_cluster_cert()
        bad = GatewaySecurity(tls_key=other[1], tls_cert=other[0]).get_connection_args("client")
        with pytest.raises(CommClosedError):
            await GatewayConnector().connect(f"127.0.0.1:{port}/my-cluster", **bad)
        with pytest.raises(TypeError, match="ssl_context"):
            await GatewayConnector().connect(f"127.0.0.1:{port}/my-cluster")
    finally:
        server.close()
        await server.wait_closed()


async def _forwarder(target_port: int):
    """A dumb TCP relay standing in for the SNI proxy in front of a scheduler."""
    tasks: set[asyncio.Task] = set()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        for t in (
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        ):
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, tasks


async def test_client_reaches_real_scheduler_through_gateway_comm(fake, tmp_path):
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_text(fake.cert[0])
    key_file.write_text(fake.cert[1])
    files = dict(tls_ca_file=str(cert_file), require_encryption=True)
    for role in ("scheduler", "worker", "client"):
        files[f"tls_{role}_cert"], files[f"tls_{role}_key"] = str(cert_file), str(key_file)
    sec = Security(**files)

    async with Scheduler(
        host="127.0.0.1", port=0, protocol="tls", security=sec, dashboard=False
    ) as s:
        port = int(s.address.rsplit(":", 1)[1])
        relay, relay_tasks = await _forwarder(port)
        relay_port = relay.sockets[0].getsockname()[1]
        fake.add_cluster("real", status="RUNNING")
        try:
            async with (
                Worker(s.address, security=sec, nthreads=1, local_directory=str(tmp_path)),
                Gateway(
                    fake.address,
                    proxy_address=relay_port,
                    auth=BasicAuth("alice", "pw"),
                    asynchronous=True,
                ) as gw,
            ):
                cluster = await gw.connect("real")
                assert cluster.scheduler_address == f"gateway://127.0.0.1:{relay_port}/real"
                async with cluster.get_client(set_as_default=False) as client:
                    assert await client.submit(lambda x: x + 1, 41) == 42
                # The worker-status subscription fills scheduler_info in the background.
                deadline = asyncio.get_running_loop().time() + 60
                while len(cluster.scheduler_info.get("workers", {})) != 1:
                    assert asyncio.get_running_loop().time() < deadline, cluster.scheduler_info
                    await asyncio.sleep(0.1)
                assert "Workers</th><td>1" in cluster._repr_html_()
                await cluster.close()
                # A raw distributed connect works with the address and security too.
                comm = await connect(
                    cluster.scheduler_address, **cluster.security.get_connection_args("client")
                )
                await comm.close()
        finally:
            relay.close()
            for t in list(relay_tasks):
                t.cancel()
            await asyncio.gather(*relay_tasks, return_exceptions=True)
            await relay.wait_closed()
