"""Streaming watches: JSON lines of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import errors
from .resources import ResourceType
from .selectors import field_matcher, label_matcher
from .store import Event, Store
from .tables import to_table
from .verbs import Api

BOOKMARK_INTERVAL = 5.0
DEFAULT_TIMEOUT = 1800.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _translate(event: Event, match: Callable[[dict[str, Any]], bool]) -> str | None:
    """Event type as seen through a selector: objects can move in and out of it."""
    now_in = match(event.obj)
    before = event.prev is not None and match(event.prev)
    if event.type == "DELETED":
        return "DELETED" if (now_in or before) else None
    if event.type == "ADDED":
        return "ADDED" if now_in else None
    if now_in and before:
        return "MODIFIED"
    if now_in:
        return "ADDED"
    return "DELETED" if before else None


def parse_rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {value!r}") from None


async def serve_watch(
    request: web.Request, api: Api, rt: ResourceType, ns: str | None, table: bool
) -> web.StreamResponse:
    query = request.query
    lmatch = label_matcher(query.get("labelSelector"))
    fmatch = field_matcher(query.get("fieldSelector"))

    def match(obj: dict[str, Any]) -> bool:
        return (
            (ns is None or obj["metadata"].get("namespace") == ns) and lmatch(obj) and fmatch(obj)
        )

    rv_param = query.get("resourceVersion", "")
    send_initial = query.get("sendInitialEvents", "").lower() == "true"
    bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
    timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    include = query.get("includeObject", "Metadata")
    since = None if (send_initial or rv_param in ("", "0")) else parse_rv(rv_param)
    store: Store = api.store
    key = rt.storage_key

    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)

    async def send(etype: str, obj: dict[str, Any]) -> None:
        body = (
            to_table(rt, [obj], obj["metadata"].get("resourceVersion", ""), include)
            if (table and etype in ("ADDED", "MODIFIED", "DELETED"))
            else obj
        )
        await resp.write(json.dumps({"type": etype, "object": body}).encode() + b"\n")

    def bookmark(rv: int, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

    if since is not None and store.too_old(key, since):
        status = errors.gone(f"too old resource version: {since} ({store.rv})").status()
        await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        return resp
    watcher, backlog = store.subscribe(key, since)
    start_rv = store.rv
    initial = [] if since is not None else [o for o in store.items(key, ns) if match(o)]
    deadline = time.monotonic() + timeout
    try:
        for obj in initial:
            await send("ADDED", api.present(rt, obj))
        if send_initial and bookmarks:
            await send("BOOKMARK", bookmark(start_rv, initial_end=True))
        for past in backlog:
            etype = _translate(past, match)
            if etype:
                await send(etype, api.present(rt, past.obj))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(
                    watcher.queue.get(), min(remaining, BOOKMARK_INTERVAL)
                )
            except asyncio.TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                if bookmarks and watcher.queue.empty():
                    await send("BOOKMARK", bookmark(store.rv))
                continue
            if event is None:  # server shutting down
                break
            etype = _translate(event, match)
            if etype:
                await send(etype, api.present(rt, event.obj))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        store.unsubscribe(watcher)
    return resp
