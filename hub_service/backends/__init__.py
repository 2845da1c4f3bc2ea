"""Cluster backends; ``backend_class`` maps a short name to a class."""

from __future__ import annotations

from traitlets.utils.importstring import import_item

ALIASES = {
    "local": "jhub_gateway.hub_service.backends.local.backend.LocalBackend",
    "kubernetes": "jhub_gateway.hub_service.backends.kube.backend.KubeBackend",
}


def backend_class(name: str) -> type:
    from .base import Backend

    path = ALIASES.get(name, name)
    try:
        cls = import_item(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot load backend {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(
            f"backend {name!r} is not a subclass of jhub_gateway.hub_service.backends.base.Backend"
        )
    return cls
