"""Traefik as the local backend's proxy: API, dashboards and scheduler TLS on one port."""

from .proxy import ProxyError, TraefikProxy

__all__ = ["ProxyError", "TraefikProxy"]
