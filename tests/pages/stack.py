"""A real hub with the gateway as a hub-managed service (local backend) and the hub templates."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.gatewaytools import free_port
from tests.hubtools import Hub, gateway_healthy, managed_service, run_hub
from tests.polling import until

SERVICE = "dask-gateway"
ACCESS = f"access:services!service={SERVICE}"
USERS = {"alice": {}, "bob": {}, "root": {"admin": True}}

GATEWAY_CONFIG = """
from jhub_gateway.options import Options, Integer
c.GatewayApp.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=2, label="Worker cores"),
    handler=lambda o: {"worker_cores": o.worker_cores, "worker_memory": "512 M"},
)
c.ClusterConfig.scheduler_start_timeout = 60
c.ClusterConfig.worker_start_timeout = 60
c.LocalBackend.heartbeat_period = 1
"""

HUB_TEMPLATES = f"""
from jhub_gateway.hub_templates import TEMPLATE_PATH
c.JupyterHub.template_paths = [TEMPLATE_PATH]
c.JupyterHub.template_vars = {{"dask_gateway_url": "/services/{SERVICE}/"}}
"""


class Stack:
    def __init__(self, hub: Hub, data_dir: Path) -> None:
        self.hub = hub
        self.address = f"{hub.url}/services/{SERVICE}"
        self.data_dir = data_dir
        self.tokens: dict[str, str] = {}

    async def token(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = await self.hub.token_for(user, ["self", ACCESS])
        return self.tokens[user]

    async def api(
        self, method: str, path: str, user: str, json: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"token {await self.token(user)}", "X-Gateway-Extensions": "1"}
        headers.update(kwargs.pop("headers", {}))
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.address + path, json=json, headers=headers, **kwargs) as r,
        ):
            text = await r.text()
            try:
                return r.status, await r.json(content_type=None) if text else None
            except ValueError:
                return r.status, text

    async def create(self, user: str, **options: Any) -> str:
        status, body = await self.api(
            "POST", "/api/v1/clusters/", user, json={"cluster_options": options}
        )
        assert status == 201, body
        return body["name"]

    async def state(self, user: str, name: str) -> str | None:
        status, body = await self.api("GET", f"/api/v1/clusters/{name}", user)
        return body["status"] if status == 200 else None

    async def stop_all(self) -> None:
        """Stop every cluster (as the admin) and wait until none is active."""
        status, overview = await self.api("GET", "/api/v1/admin/overview", "root")
        assert status == 200, overview
        for total in overview["users"]:
            await self.api("DELETE", f"/api/v1/admin/users/{total['name']}/clusters", "root")

        async def none_active() -> bool:
            _, body = await self.api("GET", "/api/v1/admin/overview", "root")
            return body["total"] == 0

        await until(none_active, 60, what="every cluster stopped")


@contextlib.asynccontextmanager
async def running_stack(root: Path) -> AsyncIterator[Stack]:
    port = free_port()
    config = root / "jhub_gateway_config.py"
    config.write_text(GATEWAY_CONFIG)
    data_dir = root / "gateway-data"
    roles = [{"name": "user", "scopes": ["self", ACCESS]}]
    async with run_hub(
        root,
        services=[
            managed_service(SERVICE, port, data_dir, "--backend", "local", "--config", str(config))
        ],
        users=USERS,
        roles=roles,
        extra_config=HUB_TEMPLATES,
    ) as hub:
        stack = Stack(hub, data_dir)
        await until(lambda: gateway_healthy(stack.address), 90, what="the hub-managed gateway")
        try:
            yield stack
        finally:
            await stack.stop_all()
