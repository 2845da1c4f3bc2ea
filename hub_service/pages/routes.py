"""Page, feed and asset routes: parse and authorise, then ask the ClusterService."""

from __future__ import annotations

from typing import Any

from jhub_gateway.models import User

from ..errors import Forbidden, InvalidOptions
from ..handlers.base import BaseHandler
from ..handlers.clusters import parse_status_filter
from ..openapi import _errors, _resp
from . import views
from .html import PageHandler
from .live import EventStreamHandler
from .static import StaticHandler


def _mine(handler: BaseHandler, user: User) -> dict[str, Any]:
    limits, usage = handler.clusters.usage(user)
    return {
        "clusters": views.rows(
            handler.clusters.list_for(user), handler.clusters.footprint, handler.settings["prefix"]
        ),
        "limits": limits.to_dict(),
        "usage": usage.to_dict(),
    }


def _overview_query(handler: BaseHandler) -> views.OverviewQuery:
    arg = handler.get_query_argument
    raw_status = arg("status", None)
    statuses = set(views.ALL_STATUSES) if raw_status == "all" else parse_status_filter(raw_status)
    try:
        page = views.parse_page(arg("page", None), 1, 10**6, "page")
        per_page = views.parse_page(
            arg("per_page", None), views.DEFAULT_PER_PAGE, views.MAX_PER_PAGE, "per_page"
        )
    except ValueError as exc:
        raise InvalidOptions(str(exc)) from None
    return views.OverviewQuery(
        user=arg("user", "") or "", statuses=frozenset(statuses), page=page, per_page=per_page
    )


def _overview(handler: BaseHandler, admin: User, query: views.OverviewQuery) -> dict[str, Any]:
    clusters = handler.clusters.list_all(admin, set(query.statuses))
    return views.overview(clusters, handler.clusters.footprint, query, handler.settings["prefix"])


class MinePage(PageHandler):
    template = "mine.html"

    async def get(self) -> None:
        await self.render_page()

    async def page_data(self, user: User) -> dict[str, Any]:
        options = await self.clusters.options_for(user)
        return {**_mine(self, user), "options": options.get_specification()}


class AdminPage(PageHandler):
    template = "admin.html"

    async def get(self) -> None:
        await self.render_page()

    async def page_data(self, user: User) -> dict[str, Any]:
        if not user.admin:
            raise Forbidden("All clusters is for hub admins only", reason="admin_required")
        return _overview(self, user, _overview_query(self))


class MineData(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        self.write_json(_mine(self, user))


class MineEvents(EventStreamHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        await self.stream(lambda: _mine(self, user))


class OverviewData(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        self.write_json(_overview(self, user, _overview_query(self)))


class OverviewEvents(EventStreamHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        query = _overview_query(self)
        _overview(self, user, query)  # refuse non-admins before the stream starts
        await self.stream(lambda: _overview(self, user, query))


class UserClusters(BaseHandler):
    async def delete(self, username: str) -> None:
        admin = await self.authenticate()
        stopped = await self.clusters.stop_all_of(admin, username)
        self.write_json({"user": username, "stopped": stopped})


handlers = [
    (r"", MinePage),
    (r"admin", AdminPage),
    (r"static/([^/]+)", StaticHandler),
    (r"api/v1/pages/mine", MineData),
    (r"api/v1/pages/mine/events", MineEvents),
    (r"api/v1/admin/overview", OverviewData),
    (r"api/v1/admin/overview/events", OverviewEvents),
    (r"api/v1/admin/users/([^/]+)/clusters", UserClusters),
]


def _get(summary: str, *codes: int, params: list | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"gatewayAuth": []}],
        "responses": {"200": _resp("OK"), **_errors(*codes)},
    }
    if params:
        op["parameters"] = params
    return op


_QUERY = [
    {"name": n, "in": "query", "required": False, "schema": {"type": t}}
    for n, t in (
        ("user", "string"),
        ("status", "string"),
        ("page", "integer"),
        ("per_page", "integer"),
    )
]


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI entries of these routes (merged into the service's document)."""
    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/admin": {
            "get": _get("All clusters page (HTML, hub admins)", 401, 403, 422, params=_QUERY)
        },
        "/static/{name}": {
            "get": {
                "summary": "Page assets (CSS, JS)",
                "security": [],
                "responses": {
                    "200": {"description": "The file"},
                    "404": {"description": "Unknown"},
                },
            }
        },
        "/api/v1/pages/mine": {
            "get": _get("The caller's clusters as page rows, limits, usage", 401, 403)
        },
        "/api/v1/pages/mine/events": {
            "get": _get("Server-sent events: the caller's rows after each change", 401, 403)
        },
        "/api/v1/admin/overview": {
            "get": _get(
                "Totals per user and one page of clusters (admins)", 401, 403, 422, params=_QUERY
            )
        },
        "/api/v1/admin/overview/events": {
            "get": _get("Server-sent events of the overview (admins)", 401, 403, 422, params=_QUERY)
        },
        "/api/v1/admin/users/{name}/clusters": {
            "delete": {
                **_get(
                    "Stop every active cluster of one user (admins)", 401, 403, 422, params=name
                ),
            }
        },
    }
