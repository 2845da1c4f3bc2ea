"""A cluster manager for dask-labextension that shows the user's gateway clusters.

dask-labextension's own manager only knows clusters it started in this
process. This one asks the gateway instead: every listing is one API call, so
clusters created from notebooks, scripts or another browser tab show up, and
launching, scaling, adapting and stopping go through the gateway API.
All methods are coroutines (the interface dask-labextension's handlers
await in its async manager API).
"""

from __future__ import annotations

import logging
from typing import Any

import dask.config

from .. import config
from ..errors import GatewayValueError
from .api import GatewayAPI
from .ids import name_from_id
from .models import cluster_model

__all__ = ["GatewayClusterManager", "launch_options"]

log = logging.getLogger("jhub_gateway.client.lab")

ClusterModel = dict[str, Any]


def launch_options() -> dict[str, Any]:
    """Options for a cluster launched from the sidebar: ``gateway.cluster.options``.

    The same defaults ``Gateway().new_cluster()`` uses in a notebook, so a
    deployment that presets a profile there gets it in the sidebar too.
    """
    return config.cluster_option_defaults()


def _initial_scaling() -> tuple[int | None, dict[str, int] | None]:
    """dask-labextension's ``labextension.default`` (workers, or adapt bounds)."""
    default = dask.config.get("labextension.default", None) or {}
    adapt = default.get("adapt") or None
    workers = default.get("workers")
    return (int(workers) if workers is not None else None), adapt


class GatewayClusterManager:
    """Lists, launches, scales, adapts and stops the user's gateway clusters."""

    def __init__(self, api: GatewayAPI) -> None:
        self.api = api
        # Adaptive bounds set from this sidebar: shown only for a server whose answers do
        # not report them (ours say ``adaptive``, wherever the bounds were set).
        self._adapt: dict[str, dict[str, int]] = {}

    def _model(self, wire: dict[str, Any]) -> ClusterModel:
        name = str(wire["name"])
        if "adaptive" in wire:
            adapt = _bounds(wire["adaptive"])
        else:
            adapt = self._adapt.get(name)
        return cluster_model(wire, self.api.dashboard_base(name, public=True), adapt)

    async def _wire(self, cluster_id: str) -> dict[str, Any] | None:
        name = name_from_id(cluster_id)
        if name is None:
            return None
        try:
            return await self.api.get_cluster(name)
        except GatewayValueError as exc:
            if exc.status == 404:  # unknown, or someone else's: the handlers answer 404
                return None
            raise

    async def list_clusters(self) -> list[ClusterModel]:
        clusters = await self.api.list_clusters()
        names = {str(c["name"]) for c in clusters}
        for gone in set(self._adapt) - names:
            del self._adapt[gone]
        return [self._model(c) for c in sorted(clusters, key=lambda c: c.get("start_time") or 0)]

    async def get_cluster(self, cluster_id: str) -> ClusterModel | None:
        wire = await self._wire(cluster_id)
        return None if wire is None else self._model(wire)

    async def start_cluster(
        self, cluster_id: str = "", configuration: dict[str, Any] | None = None
    ) -> ClusterModel:
        """Ask the gateway for a cluster (it keeps starting after this returns).

        The gateway names clusters itself, so a requested ``cluster_id`` is ignored.
        """
        name = await self.api.create_cluster(launch_options())
        log.info("Created gateway cluster %s from JupyterLab", name)
        workers, adapt = _initial_scaling()
        configuration = configuration or {}
        adapt = configuration.get("adapt") or adapt
        workers = configuration.get("workers", workers)
        if adapt:
            await self._adapt_name(name, adapt.get("minimum"), adapt.get("maximum"))
        elif workers is not None:
            await self.api.scale(name, int(workers))
        return self._model(await self.api.get_cluster(name))

    async def close_cluster(self, cluster_id: str) -> ClusterModel | None:
        wire = await self._wire(cluster_id)
        if wire is None:
            return None
        await self.api.stop(str(wire["name"]))
        self._adapt.pop(str(wire["name"]), None)
        return self._model(wire)

    async def scale_cluster(self, cluster_id: str, n: int) -> ClusterModel | None:
        name = name_from_id(cluster_id)
        if name is None or await self._wire(cluster_id) is None:
            return None
        await self.api.scale(name, int(n))
        self._adapt.pop(name, None)
        return await self.get_cluster(cluster_id)

    async def adapt_cluster(
        self, cluster_id: str, minimum: int | None, maximum: int | None
    ) -> ClusterModel | None:
        name = name_from_id(cluster_id)
        if name is None or await self._wire(cluster_id) is None:
            return None
        await self._adapt_name(name, minimum, maximum)
        return await self.get_cluster(cluster_id)

    async def _adapt_name(self, name: str, minimum: Any, maximum: Any) -> None:
        low = None if minimum is None else int(minimum)
        high = None if maximum is None else int(maximum)
        await self.api.adapt(name, low, high)
        self._adapt[name] = {"minimum": low or 0, "maximum": high if high is not None else 0}

    async def close(self) -> None:
        """Close the HTTP session; the clusters belong to the user and keep running."""
        await self.api.close()


def _bounds(adaptive: Any) -> dict[str, int] | None:
    """The sidebar's ``adapt`` from the server's ``adaptive`` (no maximum shows as 0, as a
    bound the sidebar set without one)."""
    if not isinstance(adaptive, dict):
        return None
    low, high = adaptive.get("minimum"), adaptive.get("maximum")
    return {
        "minimum": low if isinstance(low, int) else 0,
        "maximum": high if isinstance(high, int) else 0,
    }
