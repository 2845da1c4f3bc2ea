"""Reading a cluster's server-sent event stream (``Accept: text/event-stream``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class Frame:
    """One server-sent event: its type (``cluster-event``, ``workers``, ``end``), id, data."""

    event: str
    data: dict[str, Any]
    id: str | None = None


def is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("Content-Type", "").startswith(EVENT_STREAM)


async def frames(response: aiohttp.ClientResponse) -> AsyncIterator[Frame]:
    """The frames of ``response`` as they arrive; comments (keepalives) and frames whose
    data is not a JSON object are skipped."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            frame = _frame(fields, data)
            fields, data = {}, []
            if frame is not None:
                yield frame
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


def _frame(fields: dict[str, str], data: list[str]) -> Frame | None:
    if not data:
        return None
    try:
        decoded = json.loads("\n".join(data))
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    return Frame(fields.get("event", "message"), decoded, fields.get("id"))
