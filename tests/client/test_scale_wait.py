"""Waiting for workers: reading the event stream and what the user sees meanwhile."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest

from jhub_gateway.client import GatewayClusterError, progress
from jhub_gateway.client.events import MAX_FRAME_BYTES, Frame, frames
from jhub_gateway.client.progress import StartProgress
from jhub_gateway.client.scale_wait import EventsUnavailable, WorkerWait, wait_for_workers


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeStream:
    """Enough of an aiohttp response: headers, a body arriving in chunks, release()."""

    def __init__(
        self,
        chunks: list[bytes],
        hang: bool = False,
        content_type: str = "",
        cut: BaseException | None = None,
    ) -> None:
        self.headers = {"Content-Type": content_type or "text/event-stream; charset=UTF-8"}
        self.content_type = self.headers["Content-Type"].split(";")[0]
        self._chunks = chunks
        self._hang = hang
        self._cut = cut
        self.released = False

    @property
    def content(self):
        return self

    async def iter_any(self):
        for chunk in self._chunks:
            yield chunk
        if self._cut is not None:
            raise self._cut  # the connection dropped mid-body
        if self._hang:
            await asyncio.Event().wait()  # a stream that only ever keeps alive

    def release(self) -> None:
        self.released = True


STREAM = [
    b"retry: 2000\n\n",
    b'id: 1\nevent: cluster-event\ndata: {"time": 100, "kind": "PENDING", "reason": "Created"}\n\n',
    b'id: 2\nevent: cluster-event\ndata: {"time": 900, "kind": "RUNNING", "reason": "Running"}\n\n',
    b'event: workers\ndata: {"requested": 2, "active": 0}\n\n',
    b": keepalive\n\n",
    b'event: workers\ndata: {"requested": 2,\n',  # split across reads and data lines
    b'data: "active": 1}\n\n',
    b"event: workers\ndata: not json\n\n",
    b'id: 3\nevent: cluster-event\ndata: {"time": 2000, "kind": "WorkerExited",'
    b' "reason": "ProcessExited", "message": "dask-worker-1 exited with code 3"}\n\n',
    b'event: workers\ndata: {"requested": 2, "active": 2}\n\n',
]


async def test_frames_skip_comments_and_bad_data_and_join_data_lines():
    got = [f async for f in frames(FakeStream(["".join(c.decode() for c in STREAM).encode()]))]
    assert [f.event for f in got] == [
        "cluster-event",
        "cluster-event",
        "workers",
        "workers",
        "cluster-event",
        "workers",
    ]
    assert got[3].data == {"requested": 2, "active": 1}
    assert got[0].id == "1" and got[2].id is None


async def test_frames_split_anywhere_and_crlf_give_the_same_frames():
    whole = b"".join(STREAM)
    bytewise = [f async for f in frames(FakeStream([whole[i : i + 1] for i in range(len(whole))]))]
    crlf = [f async for f in frames(FakeStream([whole.replace(b"\n", b"\r\n")]))]
    at_once = [f async for f in frames(FakeStream([whole]))]
    assert bytewise == at_once == crlf and len(at_once) == 6


async def test_an_oversized_frame_is_dropped_and_the_stream_goes_on():
    huge = b"data: " + b"x" * (MAX_FRAME_BYTES + 10)  # a line that never ends in one read
    many = b"".join(b"data: " + b"y" * 1000 + b"\n" for _ in range(MAX_FRAME_BYTES // 1000 + 1))
    chunks = [
        b'event: workers\ndata: {"requested": 1, "active": 0}\n\n',
        huge[: len(huge) // 2],
        huge[len(huge) // 2 :] + b"\n\n",
        many + b"\n",
        b'event: workers\ndata: {"requested": 1, "active": 1}\n\n',
    ]
    got = [f.data async for f in frames(FakeStream(chunks))]
    assert got == [{"requested": 1, "active": 0}, {"requested": 1, "active": 1}]


async def test_plain_output_shows_new_events_and_each_count_once_history_never():
    out = io.StringIO()
    stream = FakeStream(STREAM)
    wait = WorkerWait("c1", 2, 900, StartProgress("c1", True, stream=out))
    done = [wait.apply(f) async for f in frames(stream)]
    assert done == [False, False, False, False, False, True]
    assert out.getvalue().splitlines() == [
        "Cluster c1: workers 0/2",
        "Cluster c1: workers 1/2",
        "Cluster c1: WorkerExited (ProcessExited): dask-worker-1 exited with code 3",
        "Cluster c1: workers 2/2",
    ]
    assert wait.last_id == "3"


async def _answer(stream: FakeStream) -> FakeStream:
    return stream


def test_a_terminal_gets_one_line_rewritten_per_step():
    out = Terminal()
    wait = WorkerWait("c1", 1, 0, StartProgress("c1", True, stream=out))
    assert not wait.apply(Frame("workers", {"requested": 1, "active": 0}))
    assert wait.apply(Frame("workers", {"requested": 1, "active": 1}))
    wait.progress.close()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 2 and text.endswith("Cluster c1: workers 1/1\n")


def test_a_notebook_gets_one_updating_output(monkeypatch):
    shown: list[str] = []

    class Handle:
        def update(self, content) -> None:
            shown.append(content.data)

    def display(content, display_id=False):
        assert display_id is True
        shown.append(content.data)
        return Handle()

    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", display)
    wait = WorkerWait("c<1>", 1, 0, StartProgress("c<1>", True))
    wait.apply(Frame("workers", {"requested": 1, "active": 0}))
    wait.apply(Frame("workers", {"requested": 1, "active": 1}))
    assert len(shown) == 2
    assert "<b>Cluster c&lt;1&gt;</b>" in shown[-1]
    assert shown[-1].endswith("workers 0/1<br>workers 1/1</div>")


def test_the_cluster_ending_raises_with_its_reason_and_message():
    wait = WorkerWait("c1", 3, 0, StartProgress("c1", False))
    end = {"status": "FAILED", "reason": "WorkerStartFailed", "message": "3 workers failed\nboom"}
    with pytest.raises(GatewayClusterError) as info:
        wait.apply(Frame("end", end))
    assert info.value.reason == "WorkerStartFailed"
    assert str(info.value).startswith("Cluster 'c1' is FAILED while waiting for 3 workers")
    assert "boom" in str(info.value)


async def test_the_deadline_raises_with_the_counts_and_the_last_event():
    chunks = [
        b'event: workers\ndata: {"requested": 2, "active": 1}\n\n',
        b'event: cluster-event\ndata: {"time": 5, "kind": "WorkerStartTimeout",'
        b' "reason": "Timeout", "message": "dask-worker-2 did not connect in time"}\n\n',
    ]
    stream = FakeStream(chunks, hang=True)
    with pytest.raises(GatewayClusterError) as info:
        await wait_for_workers(
            lambda h: _answer(stream), "c1", 2, since_ms=0, timeout=0.3, show_progress=False
        )
    assert info.value.reason == "WorkerStartTimeout"
    assert str(info.value) == (
        "Cluster 'c1' has 1 of 2 workers after 0.3 s; last event: "
        "WorkerStartTimeout (Timeout): dask-worker-2 did not connect in time"
    )
    assert stream.released


async def test_an_ended_stream_reconnects_from_the_last_event_seen():
    sent: list[dict[str, str]] = []
    answers = [
        FakeStream([b'id: 7\nevent: cluster-event\ndata: {"time": 1, "kind": "X"}\n\n']),
        FakeStream([b'event: workers\ndata: {"requested": 1, "active": 1}\n\n']),
    ]

    async def open_stream(headers: dict[str, str]) -> FakeStream:
        sent.append(headers)
        return answers.pop(0)

    await wait_for_workers(open_stream, "c1", 1, since_ms=0, timeout=5, show_progress=False)
    assert sent == [
        {"Accept": "text/event-stream"},
        {"Accept": "text/event-stream", "Last-Event-ID": "7"},
    ]


async def test_a_body_cut_mid_frame_reconnects_from_the_last_event_seen():
    sent: list[dict[str, str]] = []
    answers = [
        FakeStream(
            [b'id: 4\nevent: cluster-event\ndata: {"time": 1, "kind": "X"}\n\nevent: wor'],
            cut=aiohttp.ClientPayloadError("Response payload is not completed"),
        ),
        FakeStream([b'event: workers\ndata: {"requested": 1, "active": 1}\n\n']),
    ]

    async def open_stream(headers: dict[str, str]) -> FakeStream:
        sent.append(headers)
        return answers.pop(0)

    await wait_for_workers(open_stream, "c1", 1, since_ms=0, timeout=5, show_progress=False)
    assert sent[1] == {"Accept": "text/event-stream", "Last-Event-ID": "4"}


async def test_a_server_without_a_stream_is_said_so():
    stream = FakeStream([b"{}"], content_type="application/json")
    with pytest.raises(EventsUnavailable):
        await wait_for_workers(
            lambda h: _answer(stream), "c1", 1, since_ms=0, timeout=5, show_progress=False
        )
