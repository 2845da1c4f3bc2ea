"""HTML shells of the pages: the first view's data embedded, everything else done by JS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tornado import template, web

from jhub_gateway.models import User

from ..errors import GatewayError, Unauthorized
from ..handlers.base import BaseHandler
from .static import asset_url

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_loader = template.Loader(str(TEMPLATE_DIR), autoescape="xhtml_escape")

#: nothing inline, nothing from elsewhere: scripts and styles are our own files
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class PageHandler(BaseHandler):
    """A page for browsers: hub login when anonymous, an HTML error page on refusal."""

    template = ""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    async def page_data(self, user: User) -> dict[str, Any]:
        raise NotImplementedError

    async def render_page(self) -> None:
        """The page for the caller (subclasses' ``get``), or the hub login for anonymous browsers."""
        try:
            user = await self.authenticate()
        except Unauthorized:
            login_url = getattr(self.settings["authenticator"], "login_url", None)
            if login_url is None:
                raise
            self.redirect(login_url(self.request.uri))
            return
        data = await self.page_data(user)
        self.finish(self._render(self.template, user, data=embed_json(data)))

    def _render(self, name: str, user: User | None, **extra: Any) -> bytes:
        prefix = self.settings["prefix"].rstrip("/")
        hub = getattr(self.settings["authenticator"], "hub_public_url", "") or ""
        return _loader.load(name).generate(
            prefix=prefix,
            hub_url=hub,
            user=user,
            xsrf=self.sessions.xsrf_token(user) if user else "",
            css=asset_url(prefix, "pages.css"),
            js=asset_url(prefix, "pages.js"),
            **extra,
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, GatewayError):
            self.set_status(exc.status)
            message = exc.message
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message or self._reason
        else:
            self.set_status(500)
            message = "the gateway hit an unexpected error; see its log"
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            self._render("error.html", self.user, status=self.get_status(), message=message)
        )
