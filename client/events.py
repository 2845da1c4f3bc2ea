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


#: a frame larger than this is dropped whole (the stream goes on): our server's frames
#: are a few KiB at most (an event with log lines), and a line without end must not
#: grow the client's memory without bound
MAX_FRAME_BYTES = 1 << 20


async def frames(response: aiohttp.ClientResponse) -> AsyncIterator[Frame]:
    """The frames of ``response`` as they arrive; comments (keepalives), frames whose
    data is not a JSON object and frames over ``MAX_FRAME_BYTES`` are skipped."""
    parser = FrameParser()
    async for chunk in response.content.iter_any():
        for frame in parser.feed(chunk):
            yield frame


class FrameParser:
    """Incremental server-sent events parser over raw chunks (lines end in LF or CRLF)."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.max_frame = max_frame
        self._partial = b""
        self._fields: dict[str, str] = {}
        self._data: list[str] = []
        self._size = 0
        self._oversized = False

    def feed(self, chunk: bytes) -> list[Frame]:
        out: list[Frame] = []
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            frame = self._line(raw)
            if frame is not None:
                out.append(frame)
        if len(self._partial) + self._size > self.max_frame:
            self._partial = b""  # the rest of this line is dropped with its frame
            self._oversize()
        return out

    def _oversize(self) -> None:
        self._oversized = True
        self._fields, self._data, self._size = {}, [], 0

    def _line(self, raw: bytes) -> Frame | None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if line == "":
            frame = None if self._oversized else _frame(self._fields, self._data)
            self._fields, self._data, self._size, self._oversized = {}, [], 0, False
            return frame
        if self._oversized or line.startswith(":"):
            return None
        self._size += len(raw)
        if self._size > self.max_frame:
            self._oversize()
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        else:
            self._fields[name] = value
        return None


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
