"""Handlers for dask-labextension's routes, backed by the gateway.

They answer the same URLs and JSON as dask-labextension 7.0.0's handlers
(the sidebar cannot tell), but await the gateway manager, map gateway
errors to the matching 4xx with a reason, and serve dashboards from the
hub's public URL instead of proxying them through the notebook server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import unquote

import aiohttp
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from ..errors import GatewayServerError
from .ids import ID_PATTERN, name_from_id
from .manager import GatewayClusterManager

__all__ = ["handlers"]

_PROXY_PATH = re.compile(rf"dask/dashboard/({ID_PATTERN})(?:/|$)")


def _gateway_error(exc: Exception) -> web.HTTPError:
    """The notebook server's answer for a failed gateway call."""
    if isinstance(exc, web.HTTPError):
        return exc  # already the answer (e.g. an id that names no cluster)
    if isinstance(exc, aiohttp.ClientError):
        return _error(502, "the Dask gateway is unreachable", "gateway_unreachable")
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None) or str(exc)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    if isinstance(exc, GatewayServerError) or not isinstance(status, int) or status >= 500:
        return _error(502, f"the Dask gateway failed: {message}", reason)
    return _error(status, message, reason)


def _error(status: int, message: str, reason: str) -> web.HTTPError:
    """An HTTPError whose JSON body is ``{"message": message, "reason": reason}``."""
    return web.HTTPError(status, message, reason=reason)


class _ManagerHandler(APIHandler):
    @property
    def manager(self) -> GatewayClusterManager:
        return self.settings["jhub_gateway_lab_manager"]

    def _json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON", reason="invalid_json") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the body must be a JSON object", reason="invalid_json")
        return body


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error(400, f"{field} must be a non-negative integer", "invalid_count")
    return value


class ClusterHandler(_ManagerHandler):
    """``dask/clusters[/<id>]``: list, show, launch, scale or adapt, stop."""

    @web.authenticated
    async def get(self, cluster_id: str = "") -> None:
        if cluster_id:
            self.finish(
                json.dumps(await self._model(self.manager.get_cluster(cluster_id), cluster_id))
            )
            return
        try:
            clusters = await self.manager.list_clusters()
        except Exception as exc:
            raise _gateway_error(exc) from exc
        self.finish(json.dumps(clusters))

    async def _model(self, call: Awaitable[Any], cluster_id: str) -> Any:
        """The model a manager call returns; 404 when the cluster is unknown."""
        try:
            model = await call
        except Exception as exc:
            raise _gateway_error(exc) from exc
        if model is None:
            raise _error(404, f"Dask cluster {cluster_id} not found", "not_found")
        return model

    @web.authenticated
    async def put(self, cluster_id: str = "") -> None:
        try:
            model = await self.manager.start_cluster(cluster_id)
        except Exception as exc:
            raise _gateway_error(exc) from exc
        self.finish(json.dumps(model))

    @web.authenticated
    async def patch(self, cluster_id: str = "") -> None:
        body = self._json_body()
        adapt = body.get("adapt")
        if adapt is not None:
            if not isinstance(adapt, dict):
                raise web.HTTPError(400, "adapt must be an object", reason="invalid_adapt")
            low = _count(adapt.get("minimum", 0), "adapt.minimum")
            high = _count(adapt.get("maximum", low), "adapt.maximum")
            call = self.manager.adapt_cluster(cluster_id, low, high)
        elif "workers" in body:
            call = self.manager.scale_cluster(cluster_id, _count(body["workers"], "workers"))
        else:
            raise web.HTTPError(400, "send workers or adapt", reason="invalid_scaling")
        self.finish(json.dumps(await self._model(call, cluster_id)))

    @web.authenticated
    async def delete(self, cluster_id: str = "") -> None:
        await self._model(self.manager.close_cluster(cluster_id), cluster_id)
        self.set_status(204)
        self.finish()


class DashboardCheckHandler(_ManagerHandler):
    """``dask/dashboard-check/<url>``: is this a gateway dashboard, and its plots.

    The sidebar asks with ``dask/dashboard/<id>`` or a pasted public dashboard
    URL. The plot listing is fetched from the gateway with the user's
    credentials; the panes then load the plots from the public URL.
    """

    def _cluster_name(self, url: str) -> str | None:
        match = _PROXY_PATH.search(url)
        if match:
            return name_from_id(match.group(1))
        return self.manager.api.public_dashboard_name(url)

    @web.authenticated
    async def get(self, url: str) -> None:
        url = unquote(url)
        name = self._cluster_name(url)
        reply: dict[str, Any] = {"url": url, "isActive": False, "plots": {}}
        if name is not None:
            try:
                plots = await self.manager.api.individual_plots(name)
            except Exception as exc:  # noqa: BLE001 - any failure means "not active"
                self.log.debug("No dashboard for cluster %s: %s", name, exc)
            else:
                reply.update(
                    isActive=True,
                    effectiveUrl=self.manager.api.dashboard_base(name, public=True),
                    plots=plots,
                )
        self.finish(json.dumps(reply))


class DashboardRedirectHandler(JupyterHandler):
    """``dask/dashboard/<id>/<path>``: the dashboard, from the hub's public URL.

    The sidebar reads a relative dashboard's plot listing itself (same origin,
    so it is answered here with the user's credentials); every other path,
    the plot panes included, redirects the browser to the public dashboard.
    """

    @web.authenticated
    async def get(self, cluster_id: str, path: str | None = None) -> None:
        name = name_from_id(cluster_id)
        if name is None:
            raise _error(404, f"Dask cluster {cluster_id} not found", "not_found")
        api = self.settings["jhub_gateway_lab_manager"].api
        if path == "/individual-plots.json":
            try:
                plots = await api.individual_plots(name)
            except Exception as exc:
                raise _gateway_error(exc) from exc
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(plots))
            return
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(api.dashboard_base(name, public=True) + (path or "/") + query)


def handlers(base_url: str) -> list[tuple[str, type]]:
    """The routes, under the notebook server's ``base_url``."""
    root = base_url.rstrip("/") + "/dask/"
    return [
        (rf"{root}clusters/?", ClusterHandler),
        (rf"{root}clusters/(?P<cluster_id>{ID_PATTERN})", ClusterHandler),
        (rf"{root}dashboard/(?P<cluster_id>{ID_PATTERN})(?P<path>/.*)?", DashboardRedirectHandler),
        (rf"{root}dashboard-check/(?P<url>.+)", DashboardCheckHandler),
    ]
