"""Health, version, options, identity, OpenAPI and dashboard forward-auth."""

from __future__ import annotations

import re

from jhub_gateway import __version__
from jhub_gateway.models import ClusterStatus

from ..errors import Forbidden, NotFound, Unauthorized
from ..openapi import openapi_document
from .base import BaseHandler

ACTIVE = {ClusterStatus.PENDING, ClusterStatus.RUNNING}


class HealthHandler(BaseHandler):
    """Unauthenticated: used by probes. Each check says whether it passes."""

    async def get(self) -> None:
        checks = await self.gateway.health_checks()
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
        options = await self.gateway.clusters.options_for(user)
        self.write_json({"cluster_options": options.get_specification()})


class MeHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        limits, usage = self.gateway.clusters.limits_and_usage(user)
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
        if not user.admin:
            raise Forbidden("admin only", reason="admin_required")
        clusters = self.gateway.clusters.backend.list_clusters(None, ACTIVE)
        self.write_json(
            {c.name: c.to_wire(include_credentials=False, extended=True) for c in clusters}
        )


_DASHBOARD_PATH = re.compile(r"/clusters/([^/]+)(/|$)")


class DashboardAuthHandler(BaseHandler):
    """Traefik forwardAuth target: may this request see this cluster's dashboard?"""

    async def get(self) -> None:
        original = self.request.headers.get("X-Forwarded-Uri", "")
        prefix = self.settings["prefix"].rstrip("/")
        path = original[len(prefix) :] if original.startswith(prefix) else original
        match = _DASHBOARD_PATH.match(path)
        if match is None:
            raise NotFound("not a dashboard path")
        try:
            user = await self.authenticate()
        except Unauthorized:
            login_url = getattr(self.settings["authenticator"], "login_url", None)
            if login_url is None or "text/html" not in self.request.headers.get("Accept", ""):
                raise
            # A browser without a session goes through the hub login and back. Traefik
            # resolves a relative Location against *our* address, so make it absolute
            # on the host the browser used.
            headers = self.request.headers
            scheme = headers.get("X-Forwarded-Proto", "http").split(",")[0].strip()
            host = headers.get("X-Forwarded-Host", self.request.host).split(",")[0].strip()
            self.redirect(f"{scheme}://{host}{login_url(original)}")
            return
        self.gateway.clusters.lookup(user, match.group(1))
        self.set_status(200)
        self.finish()


handlers = [
    (r"api/health", HealthHandler),
    (r"api/version", VersionHandler),
    (r"api/openapi.json", OpenAPIHandler),
    (r"api/v1/options", OptionsHandler),
    (r"api/v1/users/me", MeHandler),
    (r"api/v1/admin/clusters/?", AdminClustersHandler),
    (r"api/v1/dashboard-auth", DashboardAuthHandler),
]
