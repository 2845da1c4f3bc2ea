"""Traefik forward-auth for dashboards: only the owner (or an admin) sees one.

Traefik asks this endpoint (on the service's internal address only: the public
API routes exclude it) before proxying ``/clusters/<name>/...``; a 200
lets the request through, anything else is sent back to the browser as is.
A 200 carries the cluster's dashboard credential in a header that Traefik
copies onto the proxied request only (``authResponseHeaders``), never to the
browser: the scheduler refuses dashboard requests without it.
"""

from __future__ import annotations

import re

from jhub_gateway.dashboard_credential import AUTH_PATH, HEADER, dashboard_credential

from ..errors import NotFound, Unauthorized
from .base import BaseHandler

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
        cluster = await self.clusters.authorize_dashboard(user, match.group(1))
        if cluster.token:  # without one the scheduler cannot check it either: it refuses
            self.set_header(HEADER, dashboard_credential(cluster.token))
        self.set_status(200)
        self.finish()


handlers = [(AUTH_PATH, DashboardAuthHandler)]  # no regex characters in it
