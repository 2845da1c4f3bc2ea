"""jhub-gateway: per-user Dask clusters for JupyterHub.

The public names are loaded lazily so that the scheduler runtime and the
service do not pay for importing the client (and vice versa).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Gateway": "jhub_gateway.client",
    "GatewayCluster": "jhub_gateway.client",
    "GatewayClusterError": "jhub_gateway.client",
    "GatewayServerError": "jhub_gateway.client",
    "GatewayWarning": "jhub_gateway.client",
    "BasicAuth": "jhub_gateway.client",
    "JupyterHubAuth": "jhub_gateway.client",
    "KerberosAuth": "jhub_gateway.client",
    "Options": "jhub_gateway.options",
    "String": "jhub_gateway.options",
    "Bool": "jhub_gateway.options",
    "Integer": "jhub_gateway.options",
    "Float": "jhub_gateway.options",
    "Select": "jhub_gateway.options",
    "Mapping": "jhub_gateway.options",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'jhub_gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
