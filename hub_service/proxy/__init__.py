"""Traefik as the local backend's proxy: API, dashboards and scheduler TLS."""

from .config import ClusterRoute
from .traefik import ProxyError, TraefikProxy

__all__ = ["ClusterRoute", "ProxyError", "TraefikProxy"]
