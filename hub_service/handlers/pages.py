"""The user's page: who am I, my clusters and their dashboards (browser, hub login)."""

from __future__ import annotations

from html import escape

from ..errors import Unauthorized
from .base import BaseHandler

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dask clusters</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em 1em;text-align:left}}</style></head>
<body><h1>Dask clusters</h1>
<p id="user">Signed in as <b>{user}</b>{admin}</p>
<table><thead><tr><th>Cluster</th><th>Status</th><th>Reason</th><th>Workers</th><th>Dashboard</th></tr></thead>
<tbody>{rows}</tbody></table>
<p>{empty}</p></body></html>"""


class HomeHandler(BaseHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")

    async def get(self) -> None:
        try:
            user = await self.authenticate()
        except Unauthorized:
            login_url = getattr(self.settings["authenticator"], "login_url", None)
            if login_url is None:
                raise
            self.redirect(login_url(self.request.uri))
            return
        clusters = self.clusters.list_for(user)
        prefix = self.settings["prefix"].rstrip("/")
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                escape(c.name),
                c.status.name,
                escape(c.reason),
                c.active_workers,
                f'<a href="{escape(prefix + c.dashboard_route)}">open</a>'
                if c.dashboard_route
                else "",
            )
            for c in clusters
        )
        self.finish(
            _PAGE.format(
                user=escape(user.name),
                admin=" (admin)" if user.admin else "",
                rows=rows,
                empty="" if clusters else "No active clusters.",
            )
        )


handlers = [(r"", HomeHandler)]
