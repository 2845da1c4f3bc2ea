"""Assemble the Tornado application from the handler modules."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from tornado import iostream, web
from tornado.httpserver import HTTPServer

from . import pages
from .auth.base import Authenticator
from .clusters import ClusterService
from .handlers import clusters, dashboard_auth, metrics, misc
from .handlers.base import NotFoundHandler
from .metrics import ServiceMetrics
from .session import SessionCookies

ROUTE_MODULES = (misc, clusters, dashboard_auth, metrics, pages)


def api_routes() -> list[tuple[str, type]]:
    """``(pattern relative to the prefix, handler)`` of every route the service serves."""
    return [route for module in ROUTE_MODULES for route in module.handlers]


def make_web_app(
    *,
    cluster_service: ClusterService,
    health_checks: Callable[[], Awaitable[dict[str, dict]]],
    authenticator: Authenticator,
    sessions: SessionCookies,
    prefix: str,
    max_body_bytes: int,
    metrics: ServiceMetrics | None = None,
) -> web.Application:
    metrics = metrics if metrics is not None else ServiceMetrics()
    routes: list[tuple] = []
    for pattern, handler in api_routes():
        routes.append((re.escape(prefix) + pattern + "$", handler))
    routes.extend(authenticator.extra_handlers(prefix))
    return web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        clusters=cluster_service,
        health_checks=health_checks,
        authenticator=authenticator,
        sessions=sessions,
        prefix=prefix,
        max_body_bytes=max_body_bytes,
        metrics=metrics,
        xsrf_cookies=False,
        log_function=_request_finished,
    )


def make_http_server(app: web.Application, max_body_size: int) -> HTTPServer:
    """The HTTP server of the API (behind Traefik, or called by schedulers and Traefik's
    forward-auth on the internal address)."""
    # xheaders off: nothing reads remote_ip, and whether a cookie must be Secure is
    # decided from X-Forwarded-Proto where it is set (session.is_https)
    return _ApiServer(app, xheaders=False, max_body_size=max_body_size)


class _ApiServer(HTTPServer):
    def handle_stream(self, stream: iostream.IOStream, address: tuple) -> None:
        # Every response goes out in whole writes, so Nagle never helps. Tornado turns it
        # back on after each response and off before the next (two setsockopt calls and
        # a family check per request): set it once and keep it.
        stream.set_nodelay(True)
        stream.set_nodelay = _keep_nodelay  # type: ignore[method-assign]
        super().handle_stream(stream, address)


def _keep_nodelay(value: bool) -> None:
    return None


_access_log = logging.getLogger("jhub_gateway.access")


def _request_finished(handler: web.RequestHandler) -> None:
    # handler class names, not paths: paths carry cluster names, an unbounded label set
    handler.settings["metrics"].observe_request(
        type(handler).__name__,
        handler.request.method or "",
        handler.get_status(),
        handler.request.request_time(),
    )
    _log_request(handler)


def _log_request(handler: web.RequestHandler) -> None:
    # Tornado's default logs the full URI; ours never includes query secrets, but stay terse.
    status = handler.get_status()
    level = 20 if status < 400 else 30 if status < 500 else 40
    if not _access_log.isEnabledFor(level):
        return
    _access_log.log(
        level,
        "%d %s %s %.1fms",
        status,
        handler.request.method,
        handler.request.path,
        1000.0 * handler.request.request_time(),
    )
