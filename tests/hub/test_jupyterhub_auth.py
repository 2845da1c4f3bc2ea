"""JupyterHubAuthenticator against a real JupyterHub + configurable-http-proxy."""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
import pytest

from jhub_gateway.hub_service.auth.jupyterhub import HubConfigError, JupyterHubAuthenticator
from tests.hub.conftest import PREFIX, SERVICE
from tests.polling import until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCOPE = f"access:services!service={SERVICE}"


async def whoami(env, token=None, *, key="main", header=None, method="GET", **kw):
    headers = {"Authorization": header or f"token {token}"} if (token or header) else {}
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"{env.url}{PREFIX}{key}/whoami", headers=headers, **kw) as r:
            return r.status, await r.json(), r.headers


async def test_user_token_with_scope(hub_env):
    token = await hub_env.hub.token_for("alice")
    for scheme in ("jupyterhub", "token", "Bearer"):
        status, body, _ = await whoami(hub_env, header=f"{scheme} {token}")
        assert status == 200, body
        assert body == {"name": "alice", "admin": False, "groups": ["gw-users", "team-a"]}


async def test_admin_flag(hub_env):
    status, body, _ = await whoami(hub_env, await hub_env.hub.token_for("root"))
    assert (status, body["name"], body["admin"]) == (200, "root", True)


async def test_missing_scope_is_403_naming_it(hub_env):
    status, body, _ = await whoami(hub_env, await hub_env.hub.token_for("bob"))
    assert status == 403
    assert body["error"] == "missing_scope"
    assert SCOPE in body["message"]
    # a token of an entitled user, but restricted to other scopes, is refused as well
    narrow = await hub_env.hub.token_for("alice", scopes=["read:users:name!user=alice"])
    status, body, _ = await whoami(hub_env, narrow)
    assert status == 403 and SCOPE in body["message"]


async def test_service_tokens(hub_env):
    status, body, _ = await whoami(hub_env, hub_env.hub.service_token("robot"))
    assert (status, body["name"], body["admin"]) == (200, "service:robot", False)
    status, body, _ = await whoami(hub_env, hub_env.hub.service_token("outsider"))
    assert status == 403


async def test_bogus_and_malformed_are_401(hub_env):
    status, body, headers = await whoami(hub_env)
    assert status == 401 and headers["WWW-Authenticate"] == "jupyterhub"
    status, body, _ = await whoami(hub_env, "0" * 32)
    assert (status, body["error"]) == (401, "unauthorized")
    assert "invalid" in body["message"]
    for header in ("token", "jupyterhub   ", "token a b", "Basic Zm9vOmJhcg==", "Negotiate x"):
        status, body, _ = await whoami(hub_env, header=header)
        assert status == 401, header
        assert "Authorization" in body["message"]


async def test_scope_check_can_be_disabled_with_a_warning(hub_env, caplog):
    with caplog.at_level(logging.WARNING):
        await hub_env.add_auth("open", check_scopes=False)
    assert any("check_scopes=False" in r.getMessage() for r in caplog.records)
    status, body, _ = await whoami(hub_env, await hub_env.hub.token_for("bob"), key="open")
    assert (status, body["name"]) == (200, "bob")


async def test_cold_request_costs_one_hub_call_warm_none(hub_env, counting):
    token = await hub_env.hub.token_for("alice")
    before = counting.count(r"/hub/api/user$")
    status, _, _ = await whoami(hub_env, token, key="counted")
    assert status == 200
    assert counting.count(r"/hub/api/user$") == before + 1
    for _ in range(3):
        assert (await whoami(hub_env, token, key="counted"))[0] == 200
    assert counting.count(r"/hub/api/user$") == before + 1
    # concurrent identical cold requests share a single lookup
    fresh = await hub_env.hub.token_for("alice")
    results = await asyncio.gather(*(whoami(hub_env, fresh, key="counted") for _ in range(8)))
    assert [r[0] for r in results] == [200] * 8
    assert counting.count(r"/hub/api/user$") == before + 2


async def test_hub_5xx_is_503_with_retry_hint(hub_env, counting):
    token = await hub_env.hub.token_for("alice")
    counting.fail_with = 500
    try:
        status, body, headers = await whoami(hub_env, token, key="counted")
    finally:
        counting.fail_with = None
    assert (status, body["error"]) == (503, "unavailable")
    assert int(headers["Retry-After"]) > 0
    # failures are not cached: the next request succeeds
    assert (await whoami(hub_env, token, key="counted"))[0] == 200


async def test_revoked_token_is_401_after_ttl(hub_env):
    await hub_env.add_auth("short", cache_ttl=2)
    token = await hub_env.hub.token_for("alice")
    assert (await whoami(hub_env, token, key="short"))[0] == 200
    assert (await whoami(hub_env, token))[0] == 200  # warm in the 60 s cache of "main"
    await hub_env.hub.revoke(token)

    async def refused():
        return (await whoami(hub_env, token, key="short"))[0] == 401

    await until(refused, 30, what="revoked token to be refused")
    # the long-TTL authenticator still answers from its cache: revocation costs <= cache_ttl
    assert (await whoami(hub_env, token))[0] == 200


async def test_oauth_cookie_login_flow(hub_env):
    hub = hub_env.hub
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        # through the hub's proxy: page -> our login -> hub authorize -> hub login form
        async with s.get(f"{hub.url}{PREFIX}page") as r:
            assert r.status == 200 and "/hub/login" in str(r.url)
            form_url = str(r.url)
            html = await r.text()
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', html)
        data = {"username": "alice", "password": "anything"}
        if xsrf:
            data["_xsrf"] = xsrf.group(1)
        # login -> authorize (no confirmation) -> our callback -> back to the page
        async with s.post(form_url, data=data) as r:
            body = await r.text()
            assert r.status == 200, body
            assert str(r.url) == f"{hub.url}{PREFIX}page"
        assert '"name": "alice"' in body
        # the login cookie works for API routes too, and survives without a header
        async with s.get(f"{hub.url}{PREFIX}main/whoami") as r:
            assert r.status == 200 and (await r.json())["name"] == "alice"
        # a cross-site state-changing request with the cookie is refused
        async with s.post(
            f"{hub.url}{PREFIX}main/whoami", headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403 and (await r.json())["error"] == "cross_site"
        async with s.post(f"{hub.url}{PREFIX}main/whoami", headers={"Origin": hub.url}) as r:
            assert r.status == 200


async def test_oauth_callback_rejects_bad_state(hub_env):
    async with aiohttp.ClientSession() as s:
        url = f"{hub_env.url}{PREFIX}oauth_callback?code=abc&state=forged"
        async with s.get(url, allow_redirects=False) as r:
            assert r.status == 403
        async with s.get(
            f"{hub_env.url}{PREFIX}oauth_login?next=//evil.example/x", allow_redirects=False
        ) as r:
            assert r.status == 302
            assert r.headers["Location"].startswith("/hub/api/oauth2/authorize?")


async def test_hub_down_is_503_then_recovers(hub_env):
    hub = hub_env.hub
    token = await hub.token_for("alice")  # never looked up: the cache is cold
    await hub.stop()
    try:
        status, body, headers = await whoami(hub_env, token)
        assert (status, body["error"]) == (503, "unavailable")
        assert "Retry-After" in headers
    finally:
        await hub.start()

    async def works():
        return (await whoami(hub_env, token))[0] == 200

    await until(works, 60, what="authentication to recover after the hub restarted")


async def test_config_errors_name_the_env_var(monkeypatch):
    for var in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_NAME"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(HubConfigError, match="JUPYTERHUB_API_TOKEN"):
        await JupyterHubAuthenticator().setup()
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x" * 32)
    with pytest.raises(HubConfigError, match="JUPYTERHUB_API_URL"):
        await JupyterHubAuthenticator().setup()
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api/")
    with pytest.raises(HubConfigError, match="JUPYTERHUB_SERVICE_NAME"):
        await JupyterHubAuthenticator().setup()


async def test_env_config_and_replica_agreement(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t" * 32)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_NAME", "dask-gateway")
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/jh/")
    a, b = JupyterHubAuthenticator(), JupyterHubAuthenticator(service_name="override")
    assert a.api_url == "http://127.0.0.1:1/hub/api"
    assert a.service_prefix == "/jh/services/dask-gateway/"
    assert a.oauth_client_id == "service-dask-gateway"
    assert a.oauth_callback_url == "/jh/services/dask-gateway/oauth_callback"
    assert b.service_name == "override"
    for auth in (a, b):
        await auth.setup()
    try:
        # two replicas with the same hub token read each other's login cookies
        sealed = a.sealer.seal({"t": "abc"})
        assert b.sealer.unseal(sealed, 60) == {"t": "abc"}
    finally:
        for auth in (a, b):
            await auth.cleanup()
