"""The gateway calls the JupyterLab sidebar needs, async on the server's own loop.

The notebook server runs one event loop for every request; the blocking
``Gateway`` would stall it, so this talks to the API with the client's
``HTTPClient`` directly and returns the raw cluster dicts (with the
``workers`` counts the ``ClusterReport`` does not keep).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from .. import config
from ..auth import get_auth
from ..gateway import resolve_addresses
from ..http import HTTPClient

__all__ = ["GatewayAPI", "configured_address"]


def configured_address() -> str | None:
    """``gateway.address`` from dask config, or None when no gateway is configured."""
    try:
        address = config.get("address")
    except ValueError:  # a template naming an unset variable: not configured here
        return None
    return str(address) if address else None


class GatewayAPI:
    """One HTTP session to the gateway for the whole notebook server."""

    def __init__(self, address: str | None = None) -> None:
        self.address, _, public = resolve_addresses(address, None, None)
        #: where the browser reaches the gateway (dashboards); may be a path only
        self.public_address = public
        self._http = HTTPClient(get_auth())

    async def close(self) -> None:
        await self._http.close()

    def _clusters_url(self, name: str = "", suffix: str = "") -> str:
        base = f"{self.address}/api/v1/clusters/"
        return base + quote(name, safe="") + suffix if name else base

    async def list_clusters(self) -> list[dict[str, Any]]:
        """The caller's pending and running clusters (the API's default), one request."""
        data = await self._http.request("GET", self._clusters_url())
        return list((data or {}).values())

    async def get_cluster(self, name: str) -> dict[str, Any]:
        return await self._http.request("GET", self._clusters_url(name))

    async def create_cluster(self, options: dict[str, Any]) -> str:
        data = await self._http.request(
            "POST", self._clusters_url(), json={"cluster_options": options}
        )
        return str(data["name"])

    async def scale(self, name: str, count: int) -> None:
        await self._http.request("POST", self._clusters_url(name, "/scale"), {"count": count})

    async def adapt(self, name: str, minimum: int | None, maximum: int | None) -> None:
        body = {"minimum": minimum, "maximum": maximum, "active": True}
        await self._http.request("POST", self._clusters_url(name, "/adapt"), body)

    async def stop(self, name: str) -> None:
        await self._http.request("DELETE", self._clusters_url(name))

    def dashboard_base(self, name: str, public: bool) -> str:
        """The dashboard root of a cluster: for the browser (public) or for us."""
        root = self.public_address if public else self.address
        return f"{root}/clusters/{quote(name, safe='')}"

    def public_dashboard_name(self, url: str) -> str | None:
        """The cluster whose public dashboard ``url`` points into, if it does."""
        prefix = urlsplit(self.public_address).path.rstrip("/") + "/clusters/"
        path = urlsplit(url).path
        if not path.startswith(prefix):
            return None
        name = path[len(prefix) :].split("/", 1)[0]
        return name or None

    async def individual_plots(self, name: str) -> dict[str, str]:
        """The dashboard's plot listing, fetched with the user's gateway credentials."""
        url = self.dashboard_base(name, public=False) + "/individual-plots.json"
        data = await self._http.request("GET", url)
        if not isinstance(data, dict):
            raise ValueError(f"{url} did not answer with a plot listing")
        return {str(k): str(v) for k, v in data.items()}
