"""``Gateway``: the API client (list, create, connect, scale, stop clusters)."""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from distributed.utils import LoopRunner

from . import config
from .auth import GatewayAuth, get_auth
from .errors import GatewayValueError, GatewayWarning
from .http import HTTPClient
from .options import Options
from .report import ClusterReport, ClusterStatus, coerce_status
from .scale_wait import EventsUnavailable, wait_for_workers
from .wait import wait_for_start

if TYPE_CHECKING:
    from .cluster import GatewayCluster

__all__ = ["Gateway", "resolve_addresses"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_EVENTS = GatewayWarning(
    "the gateway sends no cluster events (not a jhub-gateway server?): scale() did not wait"
)


def _event_ms(event: Any) -> int:
    value = event.get("time") if isinstance(event, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def resolve_addresses(
    address: str | None, proxy_address: str | int | None, public_address: str | None
) -> tuple[str, str, str]:
    """Return ``(address, proxy_address, public_address)`` with config fallbacks.

    ``proxy_address`` becomes ``gateway://host:port``: from config if not given;
    an int is a port on ``address``'s host; None means host and port of
    ``address`` (80/443 by scheme, 8786 without one).
    """
    if address is None:
        address = config.get("address")
    if not address:
        raise ValueError(
            "No gateway address given and gateway.address is not configured "
            "(set DASK_GATEWAY__ADDRESS or pass Gateway(address=...))"
        )
    address = str(address).rstrip("/")
    if public_address is None:
        public_address = config.get("public-address")
    public_address = str(public_address).rstrip("/") if public_address else address
    if proxy_address is None:
        proxy_address = config.get("proxy-address")
    if isinstance(proxy_address, str) and proxy_address.strip().isdigit():
        proxy_address = int(proxy_address)

    parsed = urlsplit(address)
    if proxy_address is None:
        if not parsed.hostname:
            raise ValueError(f"cannot infer the proxy address from gateway address {address!r}")
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 8786)
        netloc = f"{_host(parsed.hostname)}:{port}"
    elif isinstance(proxy_address, int) and not isinstance(proxy_address, bool):
        netloc = f"{_host(parsed.hostname or '')}:{proxy_address}"
    elif isinstance(proxy_address, str):
        proxy = urlsplit(proxy_address)
        netloc = proxy.netloc if proxy.netloc else proxy_address.strip("/")
    else:
        raise TypeError(f"proxy_address must be a str or int, got {proxy_address!r}")
    return address, f"gateway://{netloc}", public_address


def _host(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


class Gateway:
    """A client for a jhub-gateway (or dask-gateway) server.

    In the default synchronous mode every method blocks, running its coroutine
    on a background event loop; with ``asynchronous=True`` methods return
    awaitables to be used from async code on the current loop.
    """

    def __init__(
        self,
        address: str | None = None,
        proxy_address: str | int | None = None,
        public_address: str | None = None,
        auth: GatewayAuth | str | None = None,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> None:
        self.address, self.proxy_address, self._public_address = resolve_addresses(
            address, proxy_address, public_address
        )
        self.auth = get_auth(auth)
        self._http = HTTPClient(self.auth)
        self._asynchronous = asynchronous
        self._loop_runner = LoopRunner(loop=loop, asynchronous=asynchronous)
        self._loop_runner.start()
        self._closed = False

    @property
    def loop(self) -> Any:
        return self._loop_runner.loop

    @property
    def asynchronous(self) -> bool:
        return self._asynchronous

    def sync(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)``: awaitable in async mode, blocking otherwise."""
        if self.asynchronous:
            return func(*args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(func(*args, **kwargs), self.loop.asyncio_loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def __repr__(self) -> str:
        return f"Gateway<{self.address}>"

    # -- lifecycle -----------------------------------------------------------

    async def _cleanup(self) -> None:
        await self._http.close()

    def close(self) -> Any:
        """Close the HTTP session (and the background loop in sync mode)."""
        if self.asynchronous:
            return self._cleanup()
        if self._closed:
            return None
        self._closed = True
        if self.loop.asyncio_loop.is_running():
            self.sync(self._cleanup)
        self._loop_runner.stop()
        return None

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._cleanup()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_asynchronous", True) or sys.is_finalizing():
            return
        if hasattr(self, "_loop_runner"):
            try:
                self.close()
            except Exception:  # noqa: BLE001 - never raise from a finaliser
                pass

    # -- API -----------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.address}/api{path}"

    def _cluster_url(self, name: str, suffix: str = "") -> str:
        return self._url(f"/v1/clusters/{quote(name, safe='')}{suffix}")

    def _report(self, data: dict) -> ClusterReport:
        return ClusterReport._from_json(self._public_address, self.proxy_address, data)

    async def _clusters(self, status: Any = None) -> list[ClusterReport]:
        query = ""
        if status is not None:
            items = [status] if isinstance(status, (str, ClusterStatus)) else list(status)
            query = "?status=" + ",".join(coerce_status(s).name for s in items)
        data = await self._http.request("GET", self._url("/v1/clusters/") + query)
        return [self._report(v) for v in (data or {}).values()]

    def list_clusters(self, status: Any = None, **kwargs: Any) -> Any:
        """The caller's clusters, by default the active (pending and running) ones."""
        return self.sync(self._clusters, status=status, **kwargs)

    async def _cluster_report(self, cluster_name: str, wait: bool = False) -> ClusterReport:
        url = self._cluster_url(cluster_name) + ("?wait" if wait else "")
        return self._report(await self._http.request("GET", url))

    def get_cluster(self, cluster_name: str, **kwargs: Any) -> Any:
        """A ``ClusterReport`` for one cluster (GatewayValueError if unknown)."""
        return self.sync(self._cluster_report, cluster_name, **kwargs)

    async def _get_versions(self) -> dict:
        from jhub_gateway import __version__

        server = await self._http.request("GET", self._url("/version"))
        return {"server": server, "client": {"version": __version__}}

    def get_versions(self) -> Any:
        """``{"server": {...}, "client": {"version": ...}}``."""
        return self.sync(self._get_versions)

    async def _cluster_options(self, use_local_defaults: bool = True) -> Options:
        data = await self._http.request("GET", self._url("/v1/options"))
        options = Options._from_spec(data["cluster_options"])
        if use_local_defaults:
            options.update(config.cluster_option_defaults())
        return options

    def cluster_options(self, use_local_defaults: bool = True, **kwargs: Any) -> Any:
        """The server's cluster options, with ``gateway.cluster.options`` applied."""
        return self.sync(self._cluster_options, use_local_defaults=use_local_defaults, **kwargs)

    async def _submit(self, cluster_options: Mapping | None = None, **kwargs: Any) -> str:
        if cluster_options is None:
            options = config.cluster_option_defaults()
        elif isinstance(cluster_options, Mapping):
            options = dict(cluster_options)
        else:
            raise TypeError(
                "cluster_options must be an Options or a mapping, got "
                f"{type(cluster_options).__name__!r}"
            )
        options.update(kwargs)
        data = await self._http.request(
            "POST", self._url("/v1/clusters/"), json={"cluster_options": options}
        )
        return data["name"]

    def submit(self, cluster_options: Mapping | None = None, **kwargs: Any) -> Any:
        """Ask for a new cluster and return its name without waiting for it."""
        return self.sync(self._submit, cluster_options=cluster_options, **kwargs)

    async def _wait_for_start(self, cluster_name: str) -> ClusterReport:
        return await wait_for_start(
            lambda name: self._cluster_report(name, wait=True),
            cluster_name,
            timeout=config.start_timeout(),
            show_progress=config.show_progress(),
            fetch_events=self._cluster_events,
        )

    async def _cluster_events(self, cluster_name: str) -> list[dict[str, Any]]:
        data = await self._http.request("GET", self._cluster_url(cluster_name, "/events"))
        events = data.get("events") if isinstance(data, dict) else None
        return events if isinstance(events, list) else []

    def connect(self, cluster_name: str, shutdown_on_close: bool = False) -> GatewayCluster:
        """A ``GatewayCluster`` for an existing cluster (waits until it runs)."""
        from .cluster import GatewayCluster

        return GatewayCluster.from_name(
            cluster_name,
            shutdown_on_close=shutdown_on_close,
            **self._cluster_kwargs(),
        )

    def new_cluster(
        self, cluster_options: Mapping | None = None, shutdown_on_close: bool = True, **kwargs: Any
    ) -> GatewayCluster:
        """Create a cluster and wait until it runs (``submit`` + ``connect``)."""
        from .cluster import GatewayCluster

        return GatewayCluster(
            cluster_options=cluster_options,
            shutdown_on_close=shutdown_on_close,
            **self._cluster_kwargs(),
            **kwargs,
        )

    def _cluster_kwargs(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "proxy_address": self.proxy_address,
            "public_address": self._public_address,
            "auth": self.auth,
            "asynchronous": self.asynchronous,
            "loop": self.loop,
        }

    async def _stop_cluster(self, cluster_name: str) -> None:
        await self._http.request("DELETE", self._cluster_url(cluster_name))

    def stop_cluster(self, cluster_name: str, **kwargs: Any) -> Any:
        """Ask the server to stop a cluster (returns before it has stopped)."""
        return self.sync(self._stop_cluster, cluster_name, **kwargs)

    async def _post_scaling(self, cluster_name: str, op: str, body: dict) -> bool:
        """Send a scale/adapt request; False (and a GatewayWarning) if the server clamped it."""
        reply = await self._http.request("POST", self._cluster_url(cluster_name, "/" + op), body)
        if isinstance(reply, dict) and not reply.get("ok", True) and reply.get("msg"):
            warnings.warn(GatewayWarning(reply["msg"]), stacklevel=4)
            return False
        return True

    async def _scale_cluster(
        self, cluster_name: str, n: int, wait: bool = False, timeout: float | None = None
    ) -> None:
        if not wait:
            await self._post_scaling(cluster_name, "scale", {"count": n})
            return
        # the events so far are history: only what follows the request is shown
        try:
            since = max((_event_ms(e) for e in await self._cluster_events(cluster_name)), default=0)
        except GatewayValueError as exc:
            if exc.status != 404:
                raise
            since = -1  # no events route (upstream's server); the cluster may still be there
        granted = await self._post_scaling(cluster_name, "scale", {"count": n})
        if since < 0:
            warnings.warn(_NO_EVENTS, stacklevel=3)
            return
        target = n if granted else await self._requested_workers(cluster_name, n)
        try:
            await wait_for_workers(
                lambda headers: self._http.open_stream(
                    self._cluster_url(cluster_name, "/events"), headers
                ),
                cluster_name,
                target,
                since_ms=since,
                timeout=config.start_timeout() if timeout is None else timeout,
                show_progress=config.show_progress(),
            )
        except EventsUnavailable:
            warnings.warn(_NO_EVENTS, stacklevel=3)

    async def _requested_workers(self, cluster_name: str, default: int) -> int:
        # a clamped request: wait for what the server granted, which our extended answer says
        data = await self._http.request("GET", self._cluster_url(cluster_name))
        requested = (data.get("workers") or {}).get("requested") if isinstance(data, dict) else None
        return requested if isinstance(requested, int) else default

    def scale_cluster(
        self,
        cluster_name: str,
        n: int,
        wait: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Scale a cluster to ``n`` workers (GatewayWarning if the server clamps it).

        Returns once the server took the request, as upstream does. ``wait=True`` returns
        once ``n`` workers (or as many as the server granted) run, showing the cluster's
        events and worker counts meanwhile (``gateway.cluster.show-progress``); it raises
        GatewayClusterError with the reason if the cluster ends first (e.g. workers that
        fail to start) or after ``timeout`` seconds (default
        ``gateway.cluster.start-timeout``; None or <= 0 there: no limit).
        """
        return self.sync(self._scale_cluster, cluster_name, n, wait=wait, timeout=timeout, **kwargs)

    async def _adapt_cluster(
        self,
        cluster_name: str,
        minimum: int | None = None,
        maximum: int | None = None,
        active: bool = True,
    ) -> None:
        body = {"minimum": minimum, "maximum": maximum, "active": active}
        await self._post_scaling(cluster_name, "adapt", body)

    def adapt_cluster(
        self,
        cluster_name: str,
        minimum: int | None = None,
        maximum: int | None = None,
        active: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Turn adaptive scaling on (between minimum and maximum) or off."""
        return self.sync(
            self._adapt_cluster,
            cluster_name,
            minimum=minimum,
            maximum=maximum,
            active=active,
            **kwargs,
        )
