"""``GET /api/v1/clusters/<name>/events`` as server-sent events: a cluster's start, live.

The JSON list answers at once; with ``Accept: text/event-stream`` the same route
sends every event so far, then each new one as it happens (woken by the change
notifications that answer ``?wait``), and ends once the cluster has stopped.
"""

from __future__ import annotations

import asyncio
import json

from tornado.iostream import StreamClosedError

from jhub_gateway.models import Cluster, ClusterEvent

from ..errors import BadRequest
from .base import BaseHandler

KEEPALIVE_SECONDS = 15.0
#: a stream ends after this long; clients reconnect with Last-Event-ID (and re-authenticate)
MAX_STREAM_SECONDS = 600.0

EventKey = tuple[int, str, str, str]


def wants_stream(accept: str | None) -> bool:
    return bool(accept) and "text/event-stream" in str(accept)


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


def event_frame(number: int, cluster: Cluster, event: ClusterEvent) -> str:
    data = {**event.to_dict(), "status": cluster.status.name}
    return f"id: {number}\nevent: cluster-event\ndata: {json.dumps(data)}\n\n"


async def stream_events(handler: BaseHandler, name: str) -> None:
    """Send ``name``'s events to an authenticated caller until the cluster ends."""
    user = await handler.authenticate()
    cluster = await handler.clusters.find(user, name)
    skip = _last_event_id(handler.request.headers.get("Last-Event-ID"))
    handler.set_header("Content-Type", "text/event-stream; charset=UTF-8")
    handler.set_header("X-Accel-Buffering", "no")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_STREAM_SECONDS
    sent: set[EventKey] = set()
    number = 0
    try:
        handler.write("retry: 2000\n\n")
        while True:
            # Kubernetes rebuilds events from conditions: dedupe by content, not position
            for event in cluster.events:
                key = _key(event)
                if key in sent:
                    continue
                sent.add(key)
                number += 1
                if number > skip:
                    handler.write(event_frame(number, cluster, event))
            if cluster.status.is_terminal:
                handler.write(
                    f"event: end\ndata: {json.dumps({'status': cluster.status.name})}\n\n"
                )
                break
            await handler.flush()
            left = deadline - loop.time()
            if left <= 0:
                break
            cluster = await handler.clusters.wait_for_change(
                user, name, min(KEEPALIVE_SECONDS, left)
            )
            if all(_key(e) in sent for e in cluster.events):
                handler.write(": keepalive\n\n")
        handler.finish()
    except StreamClosedError:
        return  # the client went away; nothing to clean up
