"""Authentication methods; ``auth_class`` maps a short name to a class."""

from __future__ import annotations

from traitlets.utils.importstring import import_item

ALIASES = {
    "simple": "jhub_gateway.hub_service.auth.simple.SimpleAuthenticator",
    "jupyterhub": "jhub_gateway.hub_service.auth.jupyterhub.JupyterHubAuthenticator",
}


def auth_class(name: str) -> type:
    """``simple``, ``jupyterhub`` or a dotted class path (``custom``)."""
    from .base import Authenticator

    path = ALIASES.get(name, name)
    try:
        cls = import_item(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot load authenticator {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Authenticator)):
        raise ValueError(
            f"authenticator {name!r} is not a subclass of jhub_gateway.hub_service.auth.base.Authenticator"
        )
    return cls
