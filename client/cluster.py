"""``GatewayCluster``: a cluster-manager object for one gateway cluster.

Duck-types distributed's ``Cluster`` (``scheduler_address``, ``security``,
``dashboard_link``, ``scheduler_info``, ``status``) so ``Client(cluster)``
works, without inheriting its local-process machinery.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import html
import logging
import sys
import weakref
from collections.abc import Mapping
from typing import Any

from dask.utils import format_bytes
from distributed import Client
from distributed.core import rpc

from .gateway import Gateway
from .security import GatewaySecurity

log = logging.getLogger("jhub_gateway.client")

__all__ = ["GatewayCluster"]


class GatewayCluster:
    """A Dask cluster managed by the gateway.

    ``GatewayCluster(...)`` creates a new cluster and waits until it runs;
    ``GatewayCluster.from_name(name)`` attaches to an existing one. Extra
    keyword arguments are cluster options (see ``Gateway.cluster_options``).
    """

    _instances: weakref.WeakSet[GatewayCluster] = weakref.WeakSet()

    def __init__(
        self,
        address: str | None = None,
        proxy_address: str | int | None = None,
        public_address: str | None = None,
        auth: Any = None,
        cluster_options: Mapping | None = None,
        shutdown_on_close: bool = True,
        asynchronous: bool = False,
        loop: Any = None,
        **kwargs: Any,
    ) -> None:
        self._setup(
            name=None,
            cluster_options=cluster_options,
            cluster_kwargs=kwargs,
            shutdown_on_close=shutdown_on_close,
            gateway_kwargs=dict(
                address=address,
                proxy_address=proxy_address,
                public_address=public_address,
                auth=auth,
                asynchronous=asynchronous,
                loop=loop,
            ),
        )

    @classmethod
    def from_name(
        cls,
        cluster_name: str,
        shutdown_on_close: bool = False,
        address: str | None = None,
        proxy_address: str | int | None = None,
        public_address: str | None = None,
        auth: Any = None,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> GatewayCluster:
        """Attach to the existing cluster ``cluster_name`` (waits until it runs)."""
        self = cls.__new__(cls)
        self._setup(
            name=cluster_name,
            cluster_options=None,
            cluster_kwargs={},
            shutdown_on_close=shutdown_on_close,
            gateway_kwargs=dict(
                address=address,
                proxy_address=proxy_address,
                public_address=public_address,
                auth=auth,
                asynchronous=asynchronous,
                loop=loop,
            ),
        )
        return self

    def _setup(
        self,
        name: str | None,
        cluster_options: Mapping | None,
        cluster_kwargs: dict,
        shutdown_on_close: bool,
        gateway_kwargs: dict,
    ) -> None:
        self.name = name
        self.status = "created" if name is None else "starting"
        self.shutdown_on_close = shutdown_on_close
        self.scheduler_address: str | None = None
        self.dashboard_link: str | None = None
        self.security: GatewaySecurity | None = None
        self.scheduler_info: dict = {}
        self._cluster_options = cluster_options
        self._cluster_kwargs = cluster_kwargs
        self._start_task: asyncio.Future | None = None
        self._stop_task: asyncio.Future | None = None
        self._watch_task: asyncio.Task | None = None
        self._scheduler_rpc: Any = None
        # Clients we created are closed with the cluster; otherwise they keep
        # reconnecting to a scheduler that is gone.
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()
        self.gateway = Gateway(**gateway_kwargs)
        self._instances.add(self)
        if not self.asynchronous:
            try:
                self.gateway.sync(self._start_internal)
            except BaseException:
                self.gateway.close()
                raise

    @property
    def loop(self) -> Any:
        return self.gateway.loop

    @property
    def asynchronous(self) -> bool:
        return self.gateway.asynchronous

    def __repr__(self) -> str:
        return f"GatewayCluster<{self.name}, status={self.status}>"

    # -- start / stop ----------------------------------------------------------

    async def _start_internal(self) -> GatewayCluster:
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._start())
        try:
            await self._start_task
        except BaseException:
            await self._stop_internal()
            raise
        return self

    async def _start(self) -> None:
        if self.status in ("closing", "closed"):
            return
        if self.status == "created":
            self.status = "starting"
            self.name = await self.gateway._submit(self._cluster_options, **self._cluster_kwargs)
        assert self.name is not None
        report = await self.gateway._wait_for_start(self.name)
        self.scheduler_address = report.scheduler_address
        self.dashboard_link = report.dashboard_link
        self.security = report.security
        self._watch_scheduler()
        self.status = "running"

    def _watch_scheduler(self) -> None:
        """Follow worker changes in the background so ``scheduler_info`` stays current.

        Not awaited by the start: the proxy route may lag a moment behind
        RUNNING, and a cluster is usable without this information.
        """
        assert self.security is not None
        self._scheduler_rpc = rpc(
            self.scheduler_address, connection_args=self.security.get_connection_args("client")
        )
        self._watch_task = asyncio.ensure_future(
            _follow_workers(weakref.ref(self), self._scheduler_rpc, self.name)
        )

    async def _stop_internal(self, shutdown: bool | None = None) -> None:
        self._instances.discard(self)
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())
        try:
            await self._stop_task
        except Exception:
            log.warning("Error while closing cluster %s", self.name, exc_info=True)
        if shutdown is None:
            shutdown = self.shutdown_on_close
        if shutdown and self.name is not None:
            try:
                await self.gateway._stop_cluster(self.name)
            except Exception:
                log.exception("Could not shut down cluster %s", self.name)
        await self.gateway._cleanup()

    async def _stop(self) -> None:
        if self._start_task is not None and not self._start_task.done():
            await _cancel(self._start_task)
        self.status = "closing"
        if self._watch_task is not None:
            await _cancel(self._watch_task)
        if self._scheduler_rpc is not None:
            await self._scheduler_rpc.close_rpc()
        for client in list(self._clients):
            await client._close()
            self._clients.discard(client)
        self.status = "closed"

    def close(self, shutdown: bool | None = None) -> Any:
        """Release local resources; also stop the cluster if ``shutdown``.

        ``shutdown`` defaults to ``shutdown_on_close``.
        """
        if self.asynchronous:
            return self._stop_internal(shutdown=shutdown)
        if self.status == "closed":
            return None
        if self.loop.asyncio_loop.is_running():
            self.gateway.sync(self._stop_internal, shutdown=shutdown)
        self.gateway.close()
        return None

    def shutdown(self) -> Any:
        """Stop the cluster on the server and close this object."""
        return self.close(shutdown=True)

    def __await__(self) -> Any:
        return self._start_internal().__await__()

    async def __aenter__(self) -> GatewayCluster:
        return await self._start_internal()

    async def __aexit__(self, *exc: Any) -> None:
        await self._stop_internal()

    def __enter__(self) -> GatewayCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.asynchronous:
            self.close()

    def __del__(self) -> None:
        if not hasattr(self, "gateway") or self.asynchronous or sys.is_finalizing():
            return
        with contextlib.suppress(Exception):
            self.close()

    # -- use -------------------------------------------------------------------

    def _require_name(self) -> str:
        if self.name is None:
            raise RuntimeError("the cluster has not been submitted yet (await it first)")
        return self.name

    def get_client(self, set_as_default: bool = True) -> Client:
        """A ``distributed.Client`` connected to this cluster."""
        client = Client(
            self,
            security=self.security,
            set_as_default=set_as_default,
            asynchronous=self.asynchronous,
            loop=self.loop,
        )
        if not self.asynchronous:
            self._clients.add(client)
        return client

    def scale(self, n: int, wait: bool = False, timeout: float | None = None, **kwargs: Any) -> Any:
        """Scale to ``n`` workers; ``wait=True`` returns once they run, showing progress
        (see :meth:`Gateway.scale_cluster`)."""
        return self.gateway.scale_cluster(
            self._require_name(), n, wait=wait, timeout=timeout, **kwargs
        )

    def adapt(
        self, minimum: int | None = None, maximum: int | None = None, active: bool = True, **kw: Any
    ) -> Any:
        """Scale adaptively between ``minimum`` and ``maximum`` (``active=False`` stops it)."""
        return self.gateway.adapt_cluster(
            self._require_name(), minimum=minimum, maximum=maximum, active=active, **kw
        )

    # -- display ---------------------------------------------------------------

    def _status_html(self) -> str:
        workers = self.scheduler_info.get("workers") or {}
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        memory = sum(w.get("memory_limit", 0) or 0 for w in workers.values())
        cells = (("Workers", len(workers)), ("Threads", threads), ("Memory", format_bytes(memory)))
        rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in cells)
        return f"<table>{rows}</table>"

    def _repr_html_(self) -> str:
        if self.dashboard_link:
            link = html.escape(self.dashboard_link, quote=True)
            dashboard = f"<a href='{link}' target='_blank'>{link}</a>"
        else:
            dashboard = "Not Available"
        return (
            "<div style='display:inline-block;padding:8px;border:1px solid #999'>"
            "<h3>GatewayCluster</h3><ul>"
            f"<li><b>Name: </b>{html.escape(str(self.name))}</li>"
            f"<li><b>Status: </b>{html.escape(self.status)}</li>"
            f"<li><b>Dashboard: </b>{dashboard}</li>"
            f"</ul>{self._status_html()}</div>"
        )

    def _widget(self) -> Any:
        if "_cached_widget" not in self.__dict__:
            from .widgets import cluster_widget

            made = None if self.asynchronous else cluster_widget(self)
            widget, status = made if made else (None, None)
            self.__dict__.update(_cached_widget=widget, _status_widget=status)
        return self.__dict__["_cached_widget"]

    def _ipython_display_(self, **kwargs: Any) -> None:
        from IPython.display import display

        widget = self._widget()
        if widget is not None:
            display(widget, **kwargs)
        else:
            display({"text/plain": repr(self), "text/html": self._repr_html_()}, raw=True)


async def _follow_workers(ref: weakref.ref[GatewayCluster], scheduler: Any, name: Any) -> None:
    # Holds only a weak reference so an abandoned cluster can be collected;
    # reconnects with backoff until cancelled by close().
    delay = 0.5
    while True:
        comm = None
        try:
            comm = await scheduler.live_comm()
            await comm.write({"op": "subscribe_worker_status"})
            info = await comm.read()
            cluster = ref()
            if cluster is None:
                return
            cluster.scheduler_info = info
            del cluster
            delay = 0.5
            while True:
                batch = await comm.read()
                cluster = ref()
                if cluster is None:
                    return
                _apply_worker_changes(cluster, batch)
                del cluster
        except (OSError, TypeError, ValueError):
            # OSError covers distributed's CommClosedError and refused connections.
            log.debug("Worker status stream of %s interrupted", name, exc_info=True)
        finally:
            if comm is not None:
                await comm.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


def _apply_worker_changes(cluster: GatewayCluster, batch: Any) -> None:
    workers = cluster.scheduler_info.setdefault("workers", {})
    for op, msg in batch:
        if op == "add":
            workers.update(msg.get("workers", {}))
        elif op == "remove":
            workers.pop(msg, None)
    status_widget = cluster.__dict__.get("_status_widget")
    if status_widget is not None:
        status_widget.value = cluster._status_html()


async def _cancel(task: asyncio.Future) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@atexit.register
def _close_lingering_clusters() -> None:
    for cluster in list(GatewayCluster._instances):
        if cluster.asynchronous:
            continue
        try:
            cluster.close()
        except Exception:
            log.warning("Could not close %r at exit", cluster, exc_info=True)
