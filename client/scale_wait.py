"""Waiting for a scaled cluster's workers: live progress from the event stream, a deadline.

``scale(n, wait=True)`` follows ``GET /api/v1/clusters/<name>/events`` as server-sent
events: each new event and every change of the worker counts is shown as it happens
(the same output as a start), and the wait ends when ``n`` workers run, when the
cluster ends (raising with its reason and message, e.g. the workers' last log lines),
or at the deadline (raising with the counts and the last event seen).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .errors import GatewayClusterError, GatewayServerError
from .events import EVENT_STREAM, Frame, frames, is_event_stream
from .progress import StartProgress, describe

log = logging.getLogger("jhub_gateway.client")

OpenStream = Callable[[dict[str, str]], Awaitable[aiohttp.ClientResponse]]

_RECONNECT_GAP = 0.5
_TRANSIENT_HTTP = (502, 503, 504)


class EventsUnavailable(Exception):
    """The server has no event stream (e.g. upstream's server): there is nothing to follow."""


@dataclass
class WorkerWait:
    """What one wait has seen so far; :meth:`apply` says whether the wait is over."""

    name: str
    target: int
    #: server time (ms) of the newest event before the scale request: older ones are history
    since_ms: int
    progress: StartProgress
    active: int | None = None
    requested: int | None = None
    last_event: dict[str, Any] | None = None
    last_id: str | None = None
    seen: set[str] = field(default_factory=set)

    def apply(self, frame: Frame) -> bool:
        if frame.id is not None:
            self.last_id = frame.id
        data = frame.data
        if frame.event == "cluster-event":
            if _int(data.get("time")) > self.since_ms:
                self.last_event = data
                self.progress.event(data)
            return False
        if frame.event == "workers":
            self.active = _int(data.get("active"))
            self.requested = _int(data.get("requested"))
            self.progress.status(f"workers {self.active}/{self.target}")
            return self.active == self.target
        if frame.event == "end":
            status = str(data.get("status", "STOPPED"))
            reason = str(data.get("reason") or "") or None
            detail = ": ".join(str(p) for p in (reason, data.get("message")) if p)
            raise GatewayClusterError(
                f"Cluster {self.name!r} is {status} while waiting for {self.target} workers"
                + (f" ({detail})" if detail else ""),
                reason=reason,
            )
        return False

    def timeout_error(self, timeout: float) -> GatewayClusterError:
        counts = "unknown" if self.active is None else f"{self.active}"
        last = f"; last event: {describe(self.last_event)}" if self.last_event else ""
        return GatewayClusterError(
            f"Cluster {self.name!r} has {counts} of {self.target} workers after "
            f"{timeout:g} s{last}",
            reason="WorkerStartTimeout",
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def wait_for_workers(
    open_stream: OpenStream,
    name: str,
    target: int,
    since_ms: int,
    timeout: float | None,
    show_progress: bool,
) -> None:
    """Follow ``name``'s event stream until ``target`` workers run (see the module doc).

    Raises GatewayClusterError when the cluster ends or at the deadline, and
    EventsUnavailable when the server sends no stream. A dropped connection, the
    stream's own end (servers bound their streams) and 502-504 reconnect from the last
    event seen.
    """
    wait = WorkerWait(name, target, since_ms, StartProgress(name, show_progress))
    try:
        if timeout is None:
            await _follow(open_stream, wait)
            return
        try:
            await asyncio.wait_for(_follow(open_stream, wait), timeout)
        except asyncio.TimeoutError:
            raise wait.timeout_error(timeout) from None
    finally:
        wait.progress.close()


async def _follow(open_stream: OpenStream, wait: WorkerWait) -> None:
    while True:
        headers = {"Accept": EVENT_STREAM}
        if wait.last_id is not None:
            headers["Last-Event-ID"] = wait.last_id
        try:
            if await _read_once(open_stream, headers, wait):
                return
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            # a connection cut mid-body (payload error) is a drop like any other
            log.warning("Following cluster %s: %s, reconnecting", wait.name, type(exc).__name__)
        except GatewayServerError as exc:
            if exc.status not in _TRANSIENT_HTTP:
                raise
            log.warning("Following cluster %s: HTTP %s, reconnecting", wait.name, exc.status)
        await asyncio.sleep(_RECONNECT_GAP)


async def _read_once(open_stream: OpenStream, headers: dict[str, str], wait: WorkerWait) -> bool:
    response = await open_stream(headers)
    try:
        if not is_event_stream(response):
            raise EventsUnavailable(f"the server answered {response.content_type}")
        async for frame in frames(response):
            if wait.apply(frame):
                return True
        return False
    finally:
        response.release()
