"""Authentication methods; ``auth_class`` maps a short name to a class."""

from __future__ import annotations

from ..plugins import load_class

ALIASES = {
    "simple": "jhub_gateway.hub_service.auth.simple.SimpleAuthenticator",
    "jupyterhub": "jhub_gateway.hub_service.auth.jupyterhub.JupyterHubAuthenticator",
    "kerberos": "jhub_gateway.hub_service.auth.kerberos.KerberosAuthenticator",
}


def auth_class(name: str) -> type:
    """``simple``, ``jupyterhub``, ``kerberos`` or a dotted class path (``custom``)."""
    from .base import Authenticator

    return load_class("authenticator", name, ALIASES, Authenticator)
