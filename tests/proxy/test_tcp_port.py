"""A second Traefik with scheduler TLS on its own port, no prefix, no dashboard auth."""

from __future__ import annotations

import ssl

import psutil
import pytest
import pytest_asyncio

from jhub_gateway.hub_service.proxy import TraefikProxy

from .helpers import body, echo_app, get, greeting, serve, tls_backend

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy-tcp")
    api, api_url = serve(echo_app("api"))
    dash, dash_url = serve(echo_app("dash"))
    tls_a, addr_a, cert_a = await tls_backend(tmp, "backend-a", "daskgateway-a")
    tls_b, addr_b, cert_b = await tls_backend(tmp, "backend-b", "daskgateway-b")
    proxy = TraefikProxy(address="127.0.0.1:0", tcp_address="127.0.0.1:0")
    await proxy.start(api_url, tmp / "traefik", None)
    await proxy.set_cluster_routes("a", dash_url, addr_a)
    await proxy.set_cluster_routes("b", None, addr_b)
    try:
        yield proxy, {"a": cert_a, "b": cert_b}
    finally:
        pid = proxy.pid
        await proxy.stop()
        assert proxy.pid is None and not psutil.pid_exists(pid)
        for server in (api, dash):
            server.stop()
        tls_a.close()
        tls_b.close()


async def test_scheduler_tls_uses_the_tcp_port_only(env):
    proxy, certs = env
    assert proxy.public_tcp_address != proxy.public_address
    assert await greeting(proxy.public_tcp_address, "a", certs["a"]) == "backend-a"
    assert await greeting(proxy.public_tcp_address, "b", certs["b"]) == "backend-b"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await greeting(proxy.public_address, "a", certs["a"])


async def test_routes_at_the_root_prefix_without_auth(env):
    proxy, _ = env
    web = f"http://{proxy.public_address}"
    assert body(await get(f"{web}/api/v1/clusters/")) == {"who": "api", "path": "/api/v1/clusters/"}
    assert body(await get(f"{web}/clusters/a/status")) == {"who": "dash", "path": "/status"}


async def test_removing_routes_refuses_connections(env):
    proxy, certs = env
    await proxy.remove_cluster_routes("b")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await greeting(proxy.public_tcp_address, "b", certs["b"])
    await proxy.remove_cluster_routes("a")
    assert body(await get(f"http://{proxy.public_address}/clusters/a/status"))["who"] == "api"
    health = await proxy.check_health()
    assert health["ok"] is True and health["ping"] is True and health["restarts"] == 0
