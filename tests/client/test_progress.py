"""StartProgress: what a user sees while a cluster starts."""

from __future__ import annotations

import io

from jhub_gateway.client.progress import StartProgress, describe


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


EVENTS = [
    {"time": 1, "kind": "PENDING", "reason": "Created", "message": ""},
    {"time": 2, "kind": "PENDING", "reason": "SchedulerStarting", "message": "pid 42\nmore"},
    {"time": 3, "kind": "RUNNING", "reason": "RUNNING", "message": ""},
]


def test_describe_shows_kind_reason_and_the_first_message_line():
    assert describe(EVENTS[0]) == "PENDING (Created)"
    assert describe(EVENTS[1]) == "PENDING (SchedulerStarting): pid 42"
    assert describe(EVENTS[2]) == "RUNNING"


def test_plain_output_is_one_line_per_new_step():
    out = io.StringIO()
    progress = StartProgress("c1", show=True, stream=out)
    for event in EVENTS + EVENTS:  # events repeat across polls: shown once
        progress.event(event)
    progress.status("RUNNING")  # the status that repeats the last event adds nothing
    progress.close()
    assert out.getvalue().splitlines() == [
        "Cluster c1: PENDING (Created)",
        "Cluster c1: PENDING (SchedulerStarting): pid 42",
        "Cluster c1: RUNNING",
    ]


def test_a_terminal_gets_one_line_rewritten_in_place():
    out = Terminal()
    progress = StartProgress("c1", show=True, stream=out)
    for event in EVENTS:
        progress.event(event)
    progress.close()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.endswith("Cluster c1: RUNNING\n")
    assert text.count("\n") == 1


def test_nothing_is_printed_when_progress_is_off():
    out = Terminal()
    progress = StartProgress("c1", show=False, stream=out)
    progress.event(EVENTS[0])
    progress.close()
    assert out.getvalue() == "" and progress.lines == ["PENDING (Created)"]
