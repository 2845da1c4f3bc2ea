"""One real hub per module, plus a tiny Tornado app that mounts JupyterHubAuthenticator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from tornado import httpserver, netutil, web

from jhub_gateway.hub_service.auth.jupyterhub import JupyterHubAuthenticator
from jhub_gateway.hub_service.errors import GatewayError, ServiceUnavailable, Unauthorized
from tests.hubtools import CountingProxy, Hub, run_hub

SERVICE = "gw"
PREFIX = f"/services/{SERVICE}/"


class WhoAmI(web.RequestHandler):
    """``/services/gw/<auth key>/whoami``: the authenticated user as JSON, errors as status+JSON."""

    def check_xsrf_cookie(self) -> None:
        return

    async def get(self, key: str) -> None:
        auth = self.settings["auths"][key]
        try:
            user = await auth.authenticate(self)
        except GatewayError as exc:
            self.set_status(exc.status)
            if isinstance(exc, Unauthorized):
                self.set_header("WWW-Authenticate", auth.challenge)
            if isinstance(exc, ServiceUnavailable):
                self.set_header("Retry-After", str(exc.retry_after))
            self.finish({"error": exc.reason, "message": exc.message})
            return
        self.finish({"name": user.name, "admin": user.admin, "groups": sorted(user.groups)})

    post = get


class Page(web.RequestHandler):
    """A browser page: without the hub login cookie, redirect to the OAuth login."""

    async def get(self) -> None:
        auth = self.settings["auths"]["main"]
        try:
            user = await auth.authenticate(self)
        except Unauthorized:
            self.redirect(auth.login_url(self.request.uri))
            return
        self.finish(json.dumps({"page": "ok", "name": user.name}))


@dataclass
class HubEnv:
    hub: Hub
    url: str  # the tiny app, direct
    auths: dict[str, JupyterHubAuthenticator] = field(default_factory=dict)

    async def add_auth(self, key: str, **traits: Any) -> JupyterHubAuthenticator:
        traits.setdefault("api_url", self.hub.api_url)
        traits.setdefault("api_token", self.hub.service_token(SERVICE))
        traits.setdefault("service_name", SERVICE)
        auth = JupyterHubAuthenticator(**traits)
        await auth.setup()
        self.auths[key] = auth
        return auth


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubauth")
    auths: dict[str, JupyterHubAuthenticator] = {}
    main = JupyterHubAuthenticator(service_name=SERVICE)
    routes = [
        (PREFIX + r"(\w+)/whoami", WhoAmI),
        (PREFIX + "page", Page),
        *main.extra_handlers(PREFIX),
    ]
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application(routes, auths=auths))
    server.add_sockets(sockets)
    app_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    services = [
        {"name": SERVICE, "url": app_url, "oauth_no_confirm": True},
        {"name": "robot"},
        {"name": "outsider"},
    ]
    users = {
        "alice": {"groups": ["gw-users", "team-a"]},
        "bob": {},
        "root": {"admin": True},
    }
    roles = [
        {
            "name": "gw-access",
            "scopes": [f"access:services!service={SERVICE}"],
            "groups": ["gw-users"],
            "services": ["robot"],
        }
    ]
    try:
        async with run_hub(root, services=services, users=users, roles=roles) as hub:
            env = HubEnv(hub=hub, url=app_url, auths=auths)
            main.api_url = hub.api_url
            main.api_token = hub.service_token(SERVICE)
            await main.setup()
            auths["main"] = main
            try:
                yield env
            finally:
                for auth in auths.values():
                    await auth.cleanup()
    finally:
        server.stop()
        await server.close_all_connections()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def counting(hub_env):
    """An authenticator whose hub API calls go through a request-counting proxy."""
    async with CountingProxy(hub_env.hub.api_url.rsplit("/hub/api", 1)[0]) as proxy:
        await hub_env.add_auth("counted", api_url=proxy.url + "/hub/api")
        yield proxy
