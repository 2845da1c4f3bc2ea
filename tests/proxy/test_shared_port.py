"""One real Traefik with a prefix, forward-auth and scheduler TLS on the web port."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import pytest_asyncio
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jhub_gateway.hub_service.proxy import ProxyError, TraefikProxy
from tests.polling import until

from .helpers import (
    CREDENTIAL_HEADER,
    ISSUED_CREDENTIAL,
    auth_app,
    body,
    echo_app,
    get,
    greeting,
    serve,
    tls_backend,
    tls_connect,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "/services/dask-gateway"


@dataclass
class Env:
    proxy: TraefikProxy
    web: str  # http://host:port of Traefik
    dash: dict[str, str]  # dashboard backends
    tls: dict[str, str]  # scheduler TLS backends
    certs: dict[str, Path]
    auth_seen: list = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    seen: list = []
    servers = []
    api, api_url = serve(echo_app("api"))
    auth, auth_url = serve(auth_app(seen))
    dash_a, dash_a_url = serve(echo_app("dash-a"))
    dash_b, dash_b_url = serve(echo_app("dash-b"))
    servers += [api, auth, dash_a, dash_b]
    tls_a, addr_a, cert_a = await tls_backend(tmp, "backend-a", "daskgateway-a")
    tls_b, addr_b, cert_b = await tls_backend(tmp, "backend-b", "daskgateway-b")
    # a read timeout shorter than the quiet spell below: passthrough must outlive it
    proxy = TraefikProxy(address="127.0.0.1:0", prefix=PREFIX + "/", http_read_timeout=1.0)
    await proxy.start(api_url, tmp / "traefik", auth_url + "/auth")
    try:
        yield Env(
            proxy,
            f"http://{proxy.public_address}",
            {"a": dash_a_url, "b": dash_b_url},
            {"a": addr_a, "b": addr_b},
            {"a": cert_a, "b": cert_b},
            seen,
        )
    finally:
        pid = proxy.pid
        await proxy.stop()
        assert pid is None or not psutil.pid_exists(pid)
        for server in servers:
            server.stop()
        for tls in (tls_a, tls_b):
            tls.close()


async def test_api_is_routed_under_the_prefix(env):
    resp = await get(f"{env.web}{PREFIX}/api/version")
    assert resp.code == 200
    assert body(resp) == {"who": "api", "path": f"{PREFIX}/api/version"}  # not stripped
    assert (await get(f"{env.web}{PREFIX}")).code == 200
    assert (await get(f"{env.web}/elsewhere")).code == 404
    assert (await get(f"{env.web}{PREFIX}-other/x")).code == 404


async def test_dashboard_auth_is_not_routed_publicly(env):
    # Traefik's forwardAuth calls the service's internal address; the public router
    # leaves the endpoint out, whatever follows its path
    for path in ("", "/", "?x=1", "/x"):
        resp = await get(f"{env.web}{PREFIX}/api/v1/dashboard-auth{path}")
        assert resp.code == 404
        assert b"api" not in resp.body  # Traefik's own 404: the service never saw it
    assert body(await get(f"{env.web}{PREFIX}/api/v1/clusters/"))["who"] == "api"
    # and dashboards still pass their forward-auth
    await env.proxy.set_cluster_routes("a", env.dash["a"], env.tls["a"])
    resp = await get(f"{env.web}{PREFIX}/clusters/a/status", Authorization="token good")
    assert body(resp)["who"] == "dash-a"


async def test_traefik_presents_the_default_certificate_the_proxy_gave_it(env):
    # Without one Traefik mints an RSA key on every route change (tens of ms per start).
    # A TLS client whose SNI matches no scheduler route meets Traefik's own TLS.
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    host, port = env.proxy.public_address.rsplit(":", 1)
    _, writer = await asyncio.open_connection(
        host, int(port), ssl=ctx, server_hostname="not-a-cluster"
    )
    presented = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    mine = (env.proxy.data_dir / "default-tls" / "dask.crt").read_text()
    assert ssl.PEM_cert_to_DER_cert(mine) == presented
    assert (env.proxy.data_dir / "default-tls" / "dask.pem").stat().st_mode & 0o077 == 0


async def test_traefik_runs_on_one_cpu_by_default(env):
    assert psutil.Process(env.proxy.pid).environ()["GOMAXPROCS"] == "1"


async def test_the_api_gets_only_the_forwarded_headers_it_reads(env):
    resp = await get(f"{env.web}{PREFIX}/api/version?headers=1", **{"X-Forwarded-For": "6.6.6.6"})
    forwarded = [h for h in body(resp)["headers"] if h.startswith(("X-Forwarded", "X-Real"))]
    assert forwarded == ["X-Forwarded-Proto"]  # whether cookies must be Secure


async def test_dashboard_websockets_pass_the_fast_proxy(env):
    await env.proxy.set_cluster_routes("a", env.dash["a"], env.tls["a"])
    url = f"ws{env.web[4:]}{PREFIX}/clusters/a/ws"
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(url)
    assert refused.value.code == 401
    request = HTTPRequest(url, headers={"Authorization": "token good"})
    conn = await websocket_connect(request)
    try:
        for message in ("hello", "again"):
            await conn.write_message(message)
            assert await asyncio.wait_for(conn.read_message(), 30) == f"dash-a: {message}"
    finally:
        conn.close()


async def test_dashboard_needs_auth_and_loses_its_prefix(env):
    await env.proxy.set_cluster_routes("a", env.dash["a"], env.tls["a"])
    url = f"{env.web}{PREFIX}/clusters/a/status"
    assert (await get(url)).code == 401
    assert (await get(url, Authorization="token bad")).code == 403
    assert (await get(url, Cookie="session=bad")).code == 403
    resp = await get(url, Authorization="token good")
    assert resp.code == 200
    # the dashboard gets the credential the forward-auth issued, the browser never sees it
    assert body(resp) == {"who": "dash-a", "path": "/status", "credential": ISSUED_CREDENTIAL}
    assert CREDENTIAL_HEADER not in resp.headers
    assert env.auth_seen[-1] == f"{PREFIX}/clusters/a/status"  # the service checks the owner
    resp = await get(url, Cookie="session=good")
    assert body(resp)["who"] == "dash-a"


async def test_a_forged_dashboard_credential_gets_nowhere(env):
    await env.proxy.set_cluster_routes("a", env.dash["a"], env.tls["a"])
    url = f"{env.web}{PREFIX}/clusters/a/status"
    forged = {CREDENTIAL_HEADER: "forged-by-the-browser"}
    # without passing the auth, a browser's own credential header changes nothing
    assert (await get(url, **forged)).code == 401
    assert (await get(url, Authorization="token bad", **forged)).code == 403
    # when the auth passes, Traefik replaces the forged value with the issued one
    resp = await get(url, Authorization="token good", **forged)
    assert body(resp) == {"who": "dash-a", "path": "/status", "credential": ISSUED_CREDENTIAL}


async def test_scheduler_tls_is_routed_by_sni_on_the_web_port(env):
    await asyncio.gather(
        env.proxy.set_cluster_routes("a", env.dash["a"], env.tls["a"]),
        env.proxy.set_cluster_routes("b", None, env.tls["b"]),
    )
    address = env.proxy.public_address
    assert await greeting(address, "a", env.certs["a"]) == "backend-a"
    assert await greeting(address, "b", env.certs["b"]) == "backend-b"
    # a quiet scheduler connection outlives the HTTP read timeout (1 s here) ...
    reader, writer = await tls_connect(address, "a", env.certs["a"])
    assert (await reader.readline()) == b"backend-a\n"
    host, port = address.rsplit(":", 1)
    slow_reader, slow_writer = await asyncio.open_connection(host, int(port))
    slow_writer.write(b"GET / HTTP/1.1\r\n")  # ... which does cut an HTTP client that stalls
    started = time.monotonic()
    closed = await asyncio.wait_for(slow_reader.read(), 30)
    assert closed == b"", "Traefik must drop a stalled HTTP request after its read timeout"
    assert time.monotonic() - started >= 0.9  # so the scheduler connection idled as long
    slow_writer.close()
    writer.write(b"still there\n")
    assert (await asyncio.wait_for(reader.readline(), 30)) == b"still there\n"
    writer.close()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await greeting(address, "nosuch", env.certs["a"])
    # b has no dashboard: its path falls through to the API
    assert body(await get(f"{env.web}{PREFIX}/clusters/b/status"))["who"] == "api"


async def test_changing_a_target_waits_for_the_new_target(env):
    await env.proxy.set_cluster_routes("c", None, env.tls["a"])
    assert await greeting(env.proxy.public_address, "c", env.certs["a"]) == "backend-a"
    await env.proxy.set_cluster_routes("c", None, env.tls["b"])
    assert await greeting(env.proxy.public_address, "c", env.certs["b"]) == "backend-b"
    await env.proxy.remove_cluster_routes("c")


async def test_removed_routes_are_gone(env):
    await env.proxy.set_cluster_routes("gone", env.dash["b"], env.tls["b"])
    await env.proxy.remove_cluster_routes("gone")
    resp = await get(f"{env.web}{PREFIX}/clusters/gone/status", Authorization="token good")
    assert body(resp)["who"] == "api"  # no dashboard route any more: the API answers (404 there)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await greeting(env.proxy.public_address, "gone", env.certs["b"])
    await env.proxy.remove_cluster_routes("never-existed")  # no-op


async def test_concurrent_routes_share_writes(env):
    before = env.proxy.writes
    names = [f"many{i}" for i in range(20)]
    await asyncio.gather(*(env.proxy.set_cluster_routes(n, None, env.tls["a"]) for n in names))
    assert env.proxy.writes - before <= 2
    assert await greeting(env.proxy.public_address, "many7", env.certs["a"]) == "backend-a"
    await asyncio.gather(*(env.proxy.remove_cluster_routes(n) for n in names))


async def test_sync_routes_replaces_everything(env):
    await env.proxy.set_cluster_routes("old", None, env.tls["a"])
    await env.proxy.sync_routes({"new": (env.dash["b"], env.tls["b"]), "a": (None, env.tls["a"])})
    assert set(env.proxy.routes) == {"new", "a"}
    assert await greeting(env.proxy.public_address, "new", env.certs["b"]) == "backend-b"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await greeting(env.proxy.public_address, "old", env.certs["a"])
    resp = await get(f"{env.web}{PREFIX}/clusters/new/", Authorization="token good")
    assert body(resp) == {"who": "dash-b", "path": "/", "credential": ISSUED_CREDENTIAL}


async def test_bad_names_are_refused(env):
    with pytest.raises(ValueError, match="cannot be routed"):
        await env.proxy.set_cluster_routes("a`) || PathPrefix(`/", None, env.tls["a"])
    with pytest.raises(ValueError, match="HOST:PORT"):
        await env.proxy.set_cluster_routes("ok", None, "no-port")


async def test_traefik_killed_is_restarted_with_its_routes(env):
    await env.proxy.set_cluster_routes("a", env.dash["a"], env.tls["a"])
    old = env.proxy.pid
    assert (await env.proxy.check_health())["ok"] is True
    os.kill(old, signal.SIGKILL)

    async def healthy_again() -> bool:
        health = await env.proxy.check_health()
        return health["ok"] and health["pid"] not in (None, old)

    await until(healthy_again, what="traefik healthy again")
    assert env.proxy.restarts >= 1 and not psutil.pid_exists(old)

    async def routed() -> bool:
        try:
            return await greeting(env.proxy.public_address, "a", env.certs["a"]) == "backend-a"
        except (ssl.SSLError, ConnectionError):
            return False

    await until(routed, what="the route to be live")
    resp = await get(f"{env.web}{PREFIX}/clusters/a/status", Authorization="token good")
    assert body(resp)["who"] == "dash-a"


async def test_a_route_traefik_never_serves_raises(env):
    proc = psutil.Process(env.proxy.pid)
    proc.suspend()  # alive but deaf: the route can never be confirmed
    env.proxy.route_timeout = 1.0
    try:
        with pytest.raises(ProxyError, match="stuck"):
            await env.proxy.set_cluster_routes("stuck", None, env.tls["a"])
    finally:
        env.proxy.route_timeout = 30.0
        proc.resume()
    await env.proxy.remove_cluster_routes("stuck")
