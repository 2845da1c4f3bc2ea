"""Live pages: a view's snapshot now, and again whenever a cluster change alters it.

Woken by the same change notifications that answer ``?wait`` (the backend's
registry); one waiter per open page, never a polling loop per row. The stream
mechanics (headers, keepalive, a browser that went away) are the API's
:class:`~jhub_gateway.hub_service.handlers.event_stream.ServerSentEvents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from ..handlers.event_stream import KEEPALIVE_SECONDS, ServerSentEvents

#: at most one snapshot per this many seconds (a burst of heartbeats is one update)
MIN_INTERVAL_SECONDS = 0.2


class EventStreamHandler(ServerSentEvents):
    """Base of the live feeds; subclasses call :meth:`stream` with their view."""

    async def _gone_within(self, seconds: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return self.gone

    async def stream(self, snapshot: Callable[[], Any]) -> None:
        """Send ``snapshot()`` as ``event: snapshot`` now and after every change that alters it."""
        loop = asyncio.get_running_loop()
        deadline = self.stream_deadline()
        last: str | None = None
        version = await self.clusters.wait_for_any_change(-1, 0)
        if not await self.begin():
            return
        while True:
            data = json.dumps(snapshot())
            if data != last:
                last = data
                if not await self.send(f"event: snapshot\ndata: {data}\n\n"):
                    return
                if await self._gone_within(MIN_INTERVAL_SECONDS):
                    return
            left = deadline - loop.time()
            if left <= 0:
                break
            waited, seen = await self.unless_gone(
                self.clusters.wait_for_any_change(version, min(KEEPALIVE_SECONDS, left))
            )
            if not waited or seen is None:
                return
            if seen == version and not await self.keepalive():
                return
            version = seen
        self.end()
