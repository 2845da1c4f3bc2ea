"""Server-sent events: one base for every stream, and a cluster's events as one.

:class:`ServerSentEvents` is what every stream shares (the live pages' snapshots too):
headers, the reconnect hint, keepalive comments, a bounded lifetime, and noticing a
client that went away while the handler waits for the next change.

``GET /api/v1/clusters/<name>/events`` with ``Accept: text/event-stream`` (the JSON
list answers otherwise) sends every event so far, then each new one as it happens
(woken by the change notifications that answer ``?wait``), the worker counts whenever
they change, and ends once the cluster has stopped, with its final reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

from tornado.iostream import StreamClosedError

from jhub_gateway.models import Cluster, ClusterEvent

from ..errors import BadRequest
from .base import BaseHandler

KEEPALIVE_SECONDS = 15.0
#: a stream ends after this long; clients reconnect (with Last-Event-ID) and re-authenticate
MAX_STREAM_SECONDS = 600.0
RETRY_MILLISECONDS = 2000

T = TypeVar("T")
EventKey = tuple[int, str, str, str]


def wants_stream(accept: str | None) -> bool:
    return bool(accept) and "text/event-stream" in str(accept)


class ServerSentEvents(BaseHandler):
    """Base of the event-stream handlers: subclasses authenticate, then :meth:`begin`."""

    def initialize(self) -> None:
        self._closed = asyncio.Event()

    def on_connection_close(self) -> None:
        self._closed.set()

    @property
    def gone(self) -> bool:
        """The client went away (or a write failed): stop producing."""
        return self._closed.is_set()

    def stream_deadline(self) -> float:
        return asyncio.get_running_loop().time() + MAX_STREAM_SECONDS

    async def begin(self) -> bool:
        """Switch the answer to a stream (errors before this stay JSON); False if gone."""
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")  # proxies must pass each frame on at once
        return await self.send(f"retry: {RETRY_MILLISECONDS}\n\n")

    async def send(self, text: str) -> bool:
        """Write and flush ``text``; False once the client is gone."""
        if self.gone:
            return False
        try:
            self.write(text)
            await self.flush()
        except StreamClosedError:
            self._closed.set()
        return not self.gone

    async def send_event(self, event: str, data: Any, event_id: int | None = None) -> bool:
        head = f"id: {event_id}\n" if event_id is not None else ""
        return await self.send(f"{head}event: {event}\ndata: {json.dumps(data)}\n\n")

    async def keepalive(self) -> bool:
        # a comment: keeps idle proxies from closing the connection, ignored by clients
        return await self.send(": keepalive\n\n")

    async def unless_gone(self, waiting: Awaitable[T]) -> tuple[bool, T | None]:
        """``(True, result)`` of ``waiting``, or ``(False, None)`` as soon as the client goes."""
        waiter = asyncio.ensure_future(waiting)
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, closer):
                task.cancel()
        if self.gone or waiter.cancelled():
            return False, None
        return True, waiter.result()

    def end(self) -> None:
        if not self.gone:
            try:
                self.finish()
            except StreamClosedError:
                self._closed.set()


def _key(event: ClusterEvent) -> EventKey:
    return (int(event.time * 1000), event.kind, event.reason, event.message)


def _last_event_id(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(
            "Last-Event-ID must be the id of an event this stream sent (a number)",
            reason="malformed_event_id",
        )
    return int(raw)


def event_data(cluster: Cluster, event: ClusterEvent) -> dict[str, Any]:
    return {**event.to_dict(), "status": cluster.status.name}


def workers_data(cluster: Cluster) -> dict[str, Any]:
    return {"requested": cluster.target_workers, "active": cluster.active_workers}


def end_data(cluster: Cluster) -> dict[str, Any]:
    return {"status": cluster.status.name, "reason": cluster.reason, "message": cluster.message}


async def stream_events(handler: ServerSentEvents, name: str) -> None:
    """Send ``name``'s events to an authenticated caller until the cluster ends."""
    user = await handler.authenticate()
    cluster = await handler.clusters.find(user, name)
    skip = _last_event_id(handler.request.headers.get("Last-Event-ID"))
    deadline = handler.stream_deadline()
    loop = asyncio.get_running_loop()
    sent: set[EventKey] = set()
    number = 0
    workers: dict[str, Any] | None = None
    if not await handler.begin():
        return
    while True:
        wrote = False
        # Kubernetes rebuilds events from conditions: dedupe by content, not position
        for event in cluster.events:
            key = _key(event)
            if key in sent:
                continue
            sent.add(key)
            number += 1
            if number > skip:
                wrote = True
                if not await handler.send_event(
                    "cluster-event", event_data(cluster, event), number
                ):
                    return
        if workers_data(cluster) != workers:
            workers = workers_data(cluster)
            wrote = True
            if not await handler.send_event("workers", workers):
                return
        if cluster.status.is_terminal:
            await handler.send_event("end", end_data(cluster))
            break
        if not wrote and not await handler.keepalive():
            return
        left = deadline - loop.time()
        if left <= 0:
            break
        waited, changed = await handler.unless_gone(
            handler.clusters.wait_for_change(user, name, min(KEEPALIVE_SECONDS, left))
        )
        if not waited or changed is None:
            return
        cluster = changed
    handler.end()
