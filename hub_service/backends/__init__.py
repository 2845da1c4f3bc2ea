"""Cluster backends; ``backend_class`` maps a short name to a class."""

from __future__ import annotations

from ..plugins import load_class

ALIASES = {
    "local": "jhub_gateway.hub_service.backends.local.backend.LocalBackend",
    "kubernetes": "jhub_gateway.hub_service.backends.kube.backend.KubeBackend",
}


def backend_class(name: str) -> type:
    """``local``, ``kubernetes`` or a dotted class path."""
    from .base import Backend

    return load_class("backend", name, ALIASES, Backend)
