"""Expectations: creates and deletes we issued that the informers have not shown yet.

The ReplicaSet controller's pattern, by name: a create answers with the object
(generateName resolved), so the reconciler records ``(kind, name)`` and counts
it as present until the informer delivers it; a delete counts the object as
gone until the informer reports it deleted or terminating. A slow informer
therefore never makes the reconciler create a second worker for the same gap.
An entry that stays unseen for ``timeout`` seconds (a lost event, a relist that
skipped both ADDED and DELETED) is dropped, so nothing waits on it forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .cache import Key, cluster_key_of, meta

Obj = dict[str, Any]
Item = tuple[str, str]  # (kind, name)


class Expectations:
    def __init__(self, timeout: float = 60.0, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:  # fmt: skip
        self.timeout = timeout
        self._clock = clock
        self._creates: dict[Key, dict[Item, float]] = {}
        self._deletes: dict[Key, dict[Item, float]] = {}

    def expect_create(self, key: Key, kind: str, name: str) -> None:
        self._creates.setdefault(key, {})[(kind, name)] = self._clock()

    def expect_delete(self, key: Key, kind: str, name: str) -> None:
        self._deletes.setdefault(key, {})[(kind, name)] = self._clock()

    def observe(self, kind: str, etype: str, obj: Obj) -> None:
        """Feed every informer event here (after the cache has applied it)."""
        key = cluster_key_of(obj)
        if key is None:
            return
        item = (kind, str(meta(obj).get("name") or ""))
        if etype == "DELETED" or meta(obj).get("deletionTimestamp"):
            self._drop(self._deletes, key, item)
            self._drop(self._creates, key, item)
        else:
            self._drop(self._creates, key, item)

    def creates(self, key: Key, kind: str) -> set[str]:
        """Names of ``kind`` we created for ``key`` that the cache does not show yet."""
        return self._live(self._creates, key, kind)

    def deletes(self, key: Key, kind: str) -> set[str]:
        """Names of ``kind`` we deleted for ``key`` that the cache still shows."""
        return self._live(self._deletes, key, kind)

    def next_expiry(self, key: Key) -> float | None:
        """Seconds until the oldest outstanding entry of ``key`` times out (None: none)."""
        times = [*self._creates.get(key, {}).values(), *self._deletes.get(key, {}).values()]
        if not times:
            return None
        return max(0.0, min(times) + self.timeout - self._clock())

    def forget(self, key: Key) -> None:
        self._creates.pop(key, None)
        self._deletes.pop(key, None)

    def clear(self) -> None:
        self._creates.clear()
        self._deletes.clear()

    def _live(self, table: dict[Key, dict[Item, float]], key: Key, kind: str) -> set[str]:
        entries = table.get(key)
        if not entries:
            return set()
        cutoff = self._clock() - self.timeout
        for item in [i for i, t in entries.items() if t < cutoff]:
            del entries[item]
        if not entries:
            del table[key]
        return {name for k, name in entries if k == kind}

    @staticmethod
    def _drop(table: dict[Key, dict[Item, float]], key: Key, item: Item) -> None:
        entries = table.get(key)
        if entries and item in entries:
            del entries[item]
            if not entries:
                del table[key]
