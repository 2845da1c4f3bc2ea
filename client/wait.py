"""Waiting for a cluster to start: long-poll, progress output, overall deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .errors import GatewayClusterError, GatewayServerError
from .progress import StartProgress
from .report import ClusterReport, ClusterStatus

log = logging.getLogger("jhub_gateway.client")

# Between long-polls: short, so a RUNNING cluster is noticed quickly even if
# the server answers ?wait early (e.g. on every status change).
_POLL_GAP = 0.5
_TRANSIENT_HTTP = (502, 503, 504)


async def wait_for_start(
    fetch: Callable[[str], Awaitable[ClusterReport]],
    name: str,
    timeout: float | None,
    show_progress: bool,
    fetch_events: Callable[[str], Awaitable[list[dict[str, Any]]]] | None = None,
) -> ClusterReport:
    """Poll ``fetch(name)`` (a ``?wait`` long-poll) until the cluster runs.

    Raises GatewayClusterError when the cluster fails, stops, or is not running
    after ``timeout`` seconds (None = wait forever); the error names the last
    status and reason seen. Connection hiccups and 502-504 from a restarting
    proxy are retried until the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    progress = StartProgress(name, show_progress)
    try:
        return await _wait(fetch, name, timeout, deadline, progress, fetch_events)
    finally:
        progress.close()


async def _show_events(
    progress: StartProgress,
    fetch_events: Callable[[str], Awaitable[list[dict[str, Any]]]] | None,
    name: str,
) -> None:
    if fetch_events is None or not progress.show or progress.events_unavailable:
        return
    try:
        events = await fetch_events(name)
    except Exception as exc:  # events are a nicety: a server without them still starts clusters
        log.debug("No events for cluster %s: %s", name, type(exc).__name__)
        progress.events_unavailable = True  # e.g. upstream's server: do not ask again
        return
    for event in events:
        if isinstance(event, dict):
            progress.event(event)


async def _wait(
    fetch: Callable[[str], Awaitable[ClusterReport]],
    name: str,
    timeout: float | None,
    deadline: float | None,
    progress: StartProgress,
    fetch_events: Callable[[str], Awaitable[list[dict[str, Any]]]] | None,
) -> ClusterReport:
    loop = asyncio.get_running_loop()
    last: ClusterReport | None = None
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            seen = last.status_text if last is not None else "no answer from the server"
            raise GatewayClusterError(
                f"Cluster {name!r} did not start within {timeout:g} s; last status: {seen}",
                reason=(last.reason if last is not None else None) or "StartTimeout",
            )
        try:
            last = await asyncio.wait_for(fetch(name), remaining)
        except (asyncio.TimeoutError, aiohttp.ClientConnectionError) as exc:
            log.warning("Waiting for cluster %s: %s, retrying", name, type(exc).__name__)
        except GatewayServerError as exc:
            if exc.status not in _TRANSIENT_HTTP:
                raise
            log.warning("Waiting for cluster %s: HTTP %s, retrying", name, exc.status)
        else:
            await _show_events(progress, fetch_events, name)
            progress.status(last.status_text)
            if last.status is ClusterStatus.RUNNING:
                return last
            if last.status is ClusterStatus.FAILED:
                raise GatewayClusterError(
                    f"Cluster {name!r} failed to start: {last.status_text}", reason=last.reason
                )
            if last.status in (ClusterStatus.STOPPING, ClusterStatus.STOPPED):
                raise GatewayClusterError(
                    f"Cluster {name!r} is already stopped: {last.status_text}", reason=last.reason
                )
        gap = _POLL_GAP if deadline is None else max(0.0, min(_POLL_GAP, deadline - loop.time()))
        await asyncio.sleep(gap)
