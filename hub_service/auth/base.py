"""The authenticator interface every auth method implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from traitlets.config import LoggingConfigurable

from jhub_gateway.models import User

if TYPE_CHECKING:
    from tornado.web import RequestHandler

    from ..metrics import ServiceMetrics


class HubAPI(Protocol):
    """The hub's REST API, as this service: what policies that follow the hub need."""

    async def hub_get(self, path: str) -> Any:
        """GET ``path`` (e.g. ``/users?state=active``) with the service's token; decoded JSON.

        Raises when the hub cannot be asked or answers anything but 200.
        """

    async def own_scopes(self) -> set[str]:
        """The scopes the hub granted this service's token."""


class Authenticator(LoggingConfigurable):
    """Turns an incoming request into a :class:`User`, or refuses it.

    ``authenticate`` returns the user, or raises
    :class:`~jhub_gateway.hub_service.errors.Unauthorized` (with
    ``challenge`` headers set on the handler) / ``Forbidden`` /
    ``ServiceUnavailable``. It never returns None for an unauthenticated
    request: refusing is explicit.
    """

    #: value of the WWW-Authenticate header on a 401 (upstream clients rely on it)
    challenge: str = "Basic"
    #: where the service counts what authentication costs (set by the service at start)
    metrics: ServiceMetrics | None = None

    async def setup(self) -> None:
        """Called once when the service starts (open HTTP clients, read keys...)."""

    async def cleanup(self) -> None:
        """Called once on shutdown."""

    async def authenticate(self, handler: RequestHandler) -> User:
        raise NotImplementedError

    async def has_scope(self, handler: RequestHandler, scope: str) -> bool:
        """Whether the request's credential holds ``scope`` (a JupyterHub scope name).

        Methods without scopes answer False: such requests are refused, never let in.
        """
        return False

    def hub_api(self) -> HubAPI | None:
        """The hub API, for policies that follow the hub's state (clusters stop with
        their owner's notebook server). None, the default: this method knows no hub,
        and such policies stay off (the service says so at start)."""
        return None

    def extra_handlers(self, prefix: str) -> list[tuple]:
        """Extra tornado routes this method needs (e.g. an OAuth callback)."""
        return []
