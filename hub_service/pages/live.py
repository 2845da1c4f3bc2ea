"""Server-sent events: a view's snapshot now, and again whenever a cluster change alters it.

Woken by the same change notifications that answer ``?wait`` (the backend's
registry); one waiter per open page, never a polling loop per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError

from ..handlers.base import BaseHandler

KEEPALIVE_SECONDS = 15.0
#: streams end after this long; the browser reconnects (and so re-authenticates)
MAX_STREAM_SECONDS = 600.0
#: at most one snapshot per this many seconds (a burst of heartbeats is one update)
MIN_INTERVAL_SECONDS = 0.2


class EventStreamHandler(BaseHandler):
    """Base of the live feeds; subclasses call :meth:`stream` with their view."""

    def initialize(self) -> None:
        self._closed = asyncio.Event()

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")

    def on_connection_close(self) -> None:
        self._closed.set()

    async def _closed_within(self, seconds: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return self._closed.is_set()

    async def _next_version(self, since: int, timeout: float) -> int | None:
        """The change counter after ``since``, or None once the browser went away."""
        waiter = asyncio.ensure_future(self.clusters.wait_for_any_change(since, timeout))
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, closer):
                task.cancel()
        if self._closed.is_set() or waiter.cancelled():
            return None
        return waiter.result()

    async def _send(self, text: str) -> bool:
        try:
            self.write(text)
            await self.flush()
        except StreamClosedError:
            self._closed.set()
        return not self._closed.is_set()

    async def stream(self, snapshot: Callable[[], Any]) -> None:
        """Send ``snapshot()`` as ``event: snapshot`` now and after every change that alters it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_STREAM_SECONDS
        last: str | None = None
        version = await self.clusters.wait_for_any_change(-1, 0)
        if not await self._send("retry: 2000\n\n"):
            return
        while True:
            data = json.dumps(snapshot())
            if data != last:
                last = data
                if not await self._send(f"event: snapshot\ndata: {data}\n\n"):
                    return
                if await self._closed_within(MIN_INTERVAL_SECONDS):
                    return
            left = deadline - loop.time()
            if left <= 0:
                break
            seen = await self._next_version(version, min(KEEPALIVE_SECONDS, left))
            if seen is None:
                return
            if seen == version and not await self._send(": keepalive\n\n"):
                return
            version = seen
        self.finish()
