"""Assemble the Tornado application from the handler modules."""

from __future__ import annotations

import logging
import re
from typing import Any

from tornado import web

from .auth.base import Authenticator
from .handlers import clusters, misc, pages
from .handlers.base import NotFoundHandler
from .session import SessionCookies


def make_web_app(
    gateway: Any, authenticator: Authenticator, sessions: SessionCookies
) -> web.Application:
    prefix = gateway.prefix
    routes: list[tuple] = []
    for pattern, handler in misc.handlers + clusters.handlers + pages.handlers:
        routes.append((re.escape(prefix) + pattern + "$", handler))
    routes.extend(authenticator.extra_handlers(prefix))
    return web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        gateway=gateway,
        authenticator=authenticator,
        sessions=sessions,
        prefix=prefix,
        max_body_bytes=gateway.max_body_bytes,
        xsrf_cookies=False,
        log_function=_log_request,
    )


_access_log = logging.getLogger("jhub_gateway.access")


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
