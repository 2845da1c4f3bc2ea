"""Decoding a watch stream: one JSON event per line, however the bytes arrive."""

from __future__ import annotations

import json

import pytest

from jhub_gateway.kube.client import Unavailable, _json_lines


class Body:
    """The part of an aiohttp response the decoder reads."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.content = self
        self._chunks = chunks

    async def iter_any(self):
        for chunk in self._chunks:
            yield chunk


EVENTS = [
    {"type": "ADDED", "object": {"metadata": {"name": f"p{i}"}, "x": "y" * i}} for i in range(40)
]
STREAM = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)


async def decode(chunks: list[bytes]) -> list[dict]:
    return [e async for e in _json_lines(Body(chunks))]


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
async def test_events_are_the_same_however_the_stream_is_cut(size):
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert await decode(chunks) == EVENTS


async def test_a_last_event_without_newline_and_blank_lines_are_handled():
    assert await decode([b"\n\n", STREAM, b'{"type": "DELETED", "object": {}}']) == [
        *EVENTS,
        {"type": "DELETED", "object": {}},
    ]


async def test_a_line_that_is_not_an_event_is_an_unavailable_stream():
    with pytest.raises(Unavailable) as info:
        await decode([STREAM, b"[1, 2]\n"])
    assert info.value.reason == "MalformedWatchEvent"
