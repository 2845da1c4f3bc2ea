"""Waiting for a cluster to start: long-poll, progress output, overall deadline."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

import aiohttp

from .errors import GatewayClusterError, GatewayServerError
from .report import ClusterReport, ClusterStatus

log = logging.getLogger("jhub_gateway.client")

# Between long-polls: short, so a RUNNING cluster is noticed quickly even if
# the server answers ?wait early (e.g. on every status change).
_POLL_GAP = 0.5
_TRANSIENT_HTTP = (502, 503, 504)


class _Progress:
    """Reports each distinct (status, reason, message) once."""

    def __init__(self, name: str, show: bool) -> None:
        self.name = name
        self.show = show
        self.last: tuple | None = None

    def update(self, report: ClusterReport) -> None:
        key = (report.status, report.reason, report.message)
        if key == self.last:
            return
        self.last = key
        log.info("Cluster %s: %s", self.name, report.status_text)
        if self.show:
            print(f"Cluster {self.name}: {report.status_text}", file=sys.stderr, flush=True)


async def wait_for_start(
    fetch: Callable[[str], Awaitable[ClusterReport]],
    name: str,
    timeout: float | None,
    show_progress: bool,
) -> ClusterReport:
    """Poll ``fetch(name)`` (a ``?wait`` long-poll) until the cluster runs.

    Raises GatewayClusterError when the cluster fails, stops, or is not running
    after ``timeout`` seconds (None = wait forever); the error names the last
    status and reason seen. Connection hiccups and 502-504 from a restarting
    proxy are retried until the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    progress = _Progress(name, show_progress)
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
            progress.update(last)
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
