"""Notebook-side client: Gateway, GatewayCluster, auth, gateway:// comm.

A drop-in for upstream ``dask_gateway``'s public API. Importing this package
loads the ``gateway.*`` dask config defaults and registers the ``gateway``
comm scheme.
"""

from . import comm as _comm
from . import config as _config
from .auth import BasicAuth, GatewayAuth, JupyterHubAuth, KerberosAuth, get_auth
from .cluster import GatewayCluster
from .errors import (
    GatewayAuthError,
    GatewayClusterError,
    GatewayServerError,
    GatewayValueError,
    GatewayWarning,
)
from .gateway import Gateway
from .options import Options
from .report import ClusterReport, ClusterStatus
from .security import GatewaySecurity

_config.load_defaults()
_comm.register()

__all__ = [
    "BasicAuth",
    "ClusterReport",
    "ClusterStatus",
    "Gateway",
    "GatewayAuth",
    "GatewayAuthError",
    "GatewayCluster",
    "GatewayClusterError",
    "GatewaySecurity",
    "GatewayServerError",
    "GatewayValueError",
    "GatewayWarning",
    "JupyterHubAuth",
    "KerberosAuth",
    "Options",
    "get_auth",
]
