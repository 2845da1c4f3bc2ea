"""In-memory object storage with etcd-like resource versions, history and watchers.

One global revision counter; every write gets the next revision. Each resource
keeps a bounded event history so watches can resume from a recent version;
older versions answer 410 Gone, like a compacted etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

StorageKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace, name)


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    prev: dict[str, Any] | None


class Watcher:
    """A queue of events for one storage key; the HTTP layer drains it."""

    def __init__(self, key: StorageKey) -> None:
        self.key = key
        # None is the end-of-stream sentinel sent at server shutdown.
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()


def obj_key(obj: dict[str, Any]) -> ObjKey:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


class Store:
    def __init__(self, history: int = 10000) -> None:
        self.rv = 1
        self.history_size = history
        self._data: dict[StorageKey, dict[ObjKey, dict[str, Any]]] = {}
        self._history: dict[StorageKey, deque[Event]] = {}
        # Events with rv <= compacted[key] may be missing from history.
        self._compacted: dict[StorageKey, int] = {}
        self._watchers: dict[StorageKey, set[Watcher]] = {}
        self.listeners: list[Callable[[StorageKey, Event], None]] = []
        # dryRun=All: writes are computed and answered, but neither stored nor seen.
        self.dry = False

    @contextlib.contextmanager
    def dry_run(self, enabled: bool = True) -> Iterator[None]:
        previous, self.dry = self.dry, enabled or self.dry
        try:
            yield
        finally:
            self.dry = previous

    # -- reads -----------------------------------------------------------------

    def get(self, key: StorageKey, ns: str, name: str) -> dict[str, Any] | None:
        return self._data.get(key, {}).get((ns, name))

    def items(self, key: StorageKey, ns: str | None = None) -> Iterator[dict[str, Any]]:
        bucket = self._data.get(key, {})
        if ns is None:
            yield from bucket.values()
        else:
            yield from (o for (n, _), o in bucket.items() if n == ns)

    def keys(self) -> list[StorageKey]:
        return list(self._data)

    def count(self, key: StorageKey) -> int:
        return len(self._data.get(key, {}))

    # -- writes ----------------------------------------------------------------

    def put(self, key: StorageKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (owned by the store from now on) under a new revision."""
        if self.dry:
            prev = self._data.get(key, {}).get(obj_key(obj))
            obj["metadata"]["resourceVersion"] = prev["metadata"]["resourceVersion"] if prev else ""
            return obj
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        bucket = self._data.setdefault(key, {})
        k = obj_key(obj)
        prev = bucket.get(k)
        bucket[k] = obj
        self._emit(key, Event(self.rv, "MODIFIED" if prev else "ADDED", obj, prev))
        return obj

    def remove(self, key: StorageKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Drop an object; the DELETED event carries it at the deletion revision."""
        if self.dry:
            return obj
        bucket = self._data.get(key, {})
        prev = bucket.pop(obj_key(obj), None)
        if prev is None:
            return obj
        self.rv += 1
        # ``obj`` may be the final state (e.g. last finalizer just removed).
        gone = dict(obj)
        gone["metadata"] = dict(obj["metadata"], resourceVersion=str(self.rv))
        self._emit(key, Event(self.rv, "DELETED", gone, prev))
        return gone

    def drop_all(self, key: StorageKey) -> None:
        for obj in list(self._data.get(key, {}).values()):
            self.remove(key, obj)

    def _emit(self, key: StorageKey, event: Event) -> None:
        hist = self._history.setdefault(key, deque())
        hist.append(event)
        while len(hist) > self.history_size:
            self._compacted[key] = hist.popleft().rv
        for watcher in self._watchers.get(key, ()):
            watcher.queue.put_nowait(event)
        for listener in self.listeners:
            listener(key, event)

    def compact(self) -> None:
        """Forget all history, like an etcd compaction at the current revision."""
        for key in set(self._history) | set(self._data):
            self._history.pop(key, None)
            self._compacted[key] = self.rv

    # -- watches ---------------------------------------------------------------

    def too_old(self, key: StorageKey, rv: int) -> bool:
        return rv < self._compacted.get(key, 0)

    def subscribe(self, key: StorageKey, since: int | None) -> tuple[Watcher, list[Event]]:
        """Register a watcher; returns it and the history after ``since`` (None = none).

        Registration and history snapshot happen in one synchronous step, so no
        event can fall between them.
        """
        watcher = Watcher(key)
        self._watchers.setdefault(key, set()).add(watcher)
        backlog = []
        if since is not None:
            backlog = [e for e in self._history.get(key, ()) if e.rv > since]
        return watcher, backlog

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.key, set()).discard(watcher)

    def close_watchers(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
