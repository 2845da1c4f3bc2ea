"""JupyterLab: the dask-labextension sidebar on the user's gateway clusters.

A Jupyter server extension, enabled by installing jhub-gateway (a
``jupyter_server_config.d`` entry). It does something only when a gateway
address is configured (``gateway.address`` in dask config, e.g.
``DASK_GATEWAY__ADDRESS``) and dask-labextension is installed: then it
answers dask-labextension's ``dask/...`` routes from the gateway, so the
sidebar lists, launches, scales, adapts and stops the user's clusters and
opens their dashboards through the hub's public URL.

Needs the ``lab`` extra (``pip install jhub-gateway[lab]``); the rest of the
client never imports this package.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from jupyter_server.extension.application import ExtensionApp

from .api import GatewayAPI, configured_address
from .handlers import handlers
from .manager import GatewayClusterManager

__all__ = ["GatewayLabExtension", "GatewayClusterManager"]


def _take_precedence(web_app: Any, routes: list[tuple[str, type]]) -> None:
    """Add ``routes`` ahead of every extension loaded before us.

    Extensions load in name order, so dask-labextension's own handlers for
    the same URLs are already registered; tornado tries host rule groups in
    order, so ours go first.
    """
    web_app.add_handlers(".*$", routes)
    rules = web_app.default_router.rules
    rules.insert(0, rules.pop(-2))  # add_handlers inserts just before the base handlers


class GatewayLabExtension(ExtensionApp):
    """Serves dask-labextension's routes from the configured gateway."""

    name = "jhub_gateway_lab"
    load_other_extensions = True

    def initialize_handlers(self) -> None:
        address = configured_address()
        if address is None:
            self.log.debug("jhub-gateway lab: no gateway address configured, not active")
            return
        if importlib.util.find_spec("dask_labextension") is None:
            self.log.debug("jhub-gateway lab: dask-labextension is not installed, not active")
            return
        assert self.serverapp is not None  # set when the server loads us
        web_app = self.serverapp.web_app
        manager = GatewayClusterManager(GatewayAPI(address))
        web_app.settings["jhub_gateway_lab_manager"] = manager
        # where dask-labextension's async manager API looks for its manager
        web_app.settings["dask_cluster_manager"] = manager
        _take_precedence(web_app, handlers(web_app.settings["base_url"]))
        self.log.info("jhub-gateway lab: the Dask sidebar shows clusters of %s", address)

    async def stop_extension(self) -> None:
        if self.serverapp is None:
            return
        manager = self.serverapp.web_app.settings.get("jhub_gateway_lab_manager")
        if manager is not None:
            await manager.close()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jhub_gateway.client.lab", "app": GatewayLabExtension}]
