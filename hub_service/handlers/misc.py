"""Health, version, options, identity, OpenAPI and the admin listing."""

from __future__ import annotations

from jhub_gateway import __version__

from ..openapi import openapi_document
from .base import BaseHandler


class HealthHandler(BaseHandler):
    """Unauthenticated: used by probes. Each check says whether it passes."""

    async def get(self) -> None:
        checks = await self.health_checks()
        ok = all(check.get("ok") for check in checks.values())
        self.write_json(
            {"status": "pass" if ok else "fail", "checks": checks}, status=200 if ok else 503
        )


class VersionHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json({"version": __version__})


class OpenAPIHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json(openapi_document(self.settings["prefix"]))


class OptionsHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        options = await self.clusters.options_for(user)
        self.write_json({"cluster_options": options.get_specification()})


class MeHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        limits, usage = self.clusters.usage(user)
        self.write_json(
            {
                "name": user.name,
                "admin": user.admin,
                "groups": sorted(user.groups),
                "limits": limits.to_dict(),
                "usage": usage.to_dict(),
            }
        )


class AdminClustersHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        clusters = self.clusters.list_all(user)
        self.write_json(
            {c.name: c.to_wire(include_credentials=False, extended=True) for c in clusters}
        )


handlers = [
    (r"api/health", HealthHandler),
    (r"api/version", VersionHandler),
    (r"api/openapi.json", OpenAPIHandler),
    (r"api/v1/options", OptionsHandler),
    (r"api/v1/users/me", MeHandler),
    (r"api/v1/admin/clusters/?", AdminClustersHandler),
]
