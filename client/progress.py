"""Showing a starting cluster's events: one updating line in a terminal, a cell output in
a notebook, plain lines elsewhere (logs, CI)."""

from __future__ import annotations

import html
import logging
import sys
from typing import Any, TextIO

log = logging.getLogger("jhub_gateway.client")


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        return shell.get_ipython() is not None  # type: ignore[attr-defined]
    except Exception:
        return False


def describe(event: dict[str, Any]) -> str:
    """``kind (reason): message`` of one event as the server sends it."""
    kind = str(event.get("kind", ""))
    reason = str(event.get("reason", "") or "")
    message = str(event.get("message", "") or "").strip().splitlines()
    text = kind if not reason or reason == kind else f"{kind} ({reason})"
    return f"{text}: {message[0]}" if message else text


class StartProgress:
    """Each event or status of one cluster start, shown once, newest last."""

    def __init__(self, name: str, show: bool, stream: TextIO | None = None) -> None:
        self.name = name
        self.show = show
        self.stream = stream if stream is not None else sys.stderr
        self.lines: list[str] = []
        self._seen: set[tuple] = set()
        self._mode = "off"
        if show:
            if _in_notebook():
                self._mode = "notebook"
            elif getattr(self.stream, "isatty", lambda: False)():
                self._mode = "tty"
            else:
                self._mode = "lines"
        self._handle: Any = None
        self._tty_open = False
        #: the server sent no events (an upstream server): statuses only
        self.events_unavailable = False

    def status(self, text: str) -> None:
        """A status line (``RUNNING``, ``PENDING (SchedulerStarting): ...``)."""
        self._emit(("status", text), text)

    def event(self, event: dict[str, Any]) -> None:
        key = ("event", event.get("time"), event.get("kind"), event.get("reason"))
        self._emit(key, describe(event))

    def _emit(self, key: tuple, text: str) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        if self.lines and self.lines[-1] == text:
            return  # a status repeating the event just shown
        self.lines.append(text)
        log.info("Cluster %s: %s", self.name, text)
        line = f"Cluster {self.name}: {text}"
        if self._mode == "lines":
            print(line, file=self.stream, flush=True)
        elif self._mode == "tty":
            # one line, rewritten in place: the latest step is what matters while waiting
            self.stream.write("\r\x1b[K" + line[:200])
            self.stream.flush()
            self._tty_open = True
        elif self._mode == "notebook":
            self._update_notebook()

    def _update_notebook(self) -> None:
        from IPython.display import HTML, display

        body = "<br>".join(html.escape(t) for t in self.lines[-8:])
        content = HTML(f"<div><b>Cluster {html.escape(self.name)}</b><br>{body}</div>")
        if self._handle is None:
            self._handle = display(content, display_id=True)
        else:
            self._handle.update(content)

    def close(self) -> None:
        if self._tty_open:
            self.stream.write("\n")
            self.stream.flush()
            self._tty_open = False
