"""The reconcile work queue: deduplicating, per-key exclusive, with delays and backoff.

Keys are object identities (``(namespace, name)``), never events: the reconciler
reads the current state itself, so ten changes to one object that arrive while
it waits in the queue collapse into one reconcile. A key handed to a worker is
not handed to another until that worker calls ``done(key)``; if the key was put
again meanwhile it is queued once more at ``done`` so the newest state is seen.

Delays (``put_after``, ``put_backoff``) are measured with the injected ``clock``.
``get_nowait()`` only consults that clock, so tests can drive delays with a fake
clock and no sleeping; ``await get()`` additionally sleeps in real time until
the next delayed key falls due, which is what production uses.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class QueueClosed(Exception):
    """The queue was closed: workers should exit."""


class QueueEmpty(Exception):
    """``get_nowait()`` found no key ready to hand out."""


class WorkQueue(Generic[K]):
    """Keys to reconcile, drained by any number of worker tasks.

    ``backoff_base`` and ``backoff_max`` (seconds) shape ``put_backoff``: the
    n-th consecutive failure of a key waits ``min(backoff_max, base * 2**(n-1))``.
    """

    def __init__(
        self,
        *,
        backoff_base: float = 0.1,
        backoff_max: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._clock = clock
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()  # exactly the keys in _ready
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # put while processing: requeue at done()
        # Delayed keys: the earliest due time per key, plus a heap whose stale
        # entries (due time no longer the key's current one) are skipped.
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._failures: dict[K, int] = {}
        self._closed = False
        self._wakeup = asyncio.Event()

    # -- adding -----------------------------------------------------------------

    def put(self, key: K) -> None:
        """Queue ``key`` now; a no-op if it is already queued."""
        if self._closed:
            log.debug("work queue closed, dropping key %s", key)
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._wakeup.set()

    def put_after(self, key: K, delay: float) -> None:
        """Queue ``key`` once ``delay`` seconds have passed (the earliest request wins)."""
        if delay <= 0:
            self.put(key)
            return
        if self._closed:
            return
        due = self._clock() + delay
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        # A getter sleeping until a later due time must recompute its timeout.
        self._wakeup.set()

    def put_backoff(self, key: K) -> float:
        """Queue ``key`` after its exponential backoff delay; returns that delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
        self.put_after(key, delay)
        return delay

    def reset_backoff(self, key: K) -> None:
        """Forget ``key``'s failures (call after a successful reconcile)."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    # -- taking -----------------------------------------------------------------

    def _promote_due(self) -> float | None:
        """Move due delayed keys to the ready queue; return the next due time, if any."""
        now = self._clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier request
                continue
            if due > now:
                return due
            heapq.heappop(self._heap)
            del self._due[key]
            self.put(key)
        return None

    def get_nowait(self) -> K:
        """Hand out the next ready key, or raise ``QueueEmpty`` / ``QueueClosed``."""
        if self._closed:
            raise QueueClosed()
        self._promote_due()
        if not self._ready:
            raise QueueEmpty()
        key = self._ready.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    async def get(self) -> K:
        """Wait for a key; the caller must call ``done(key)`` when finished with it."""
        while True:
            if self._closed:
                raise QueueClosed()
            next_due = self._promote_due()
            if self._ready:
                return self.get_nowait()
            # Nothing ready: nothing can have been added since the checks above
            # (no await in between), so clearing the event cannot lose a wakeup.
            self._wakeup.clear()
            timeout = None if next_due is None else max(0.0, next_due - self._clock())
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass  # a delayed key fell due

    def done(self, key: K) -> None:
        """Release ``key``; queue it again if it was put while being processed."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.put(key)

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Refuse new keys and make every current and future ``get()`` raise ``QueueClosed``."""
        self._closed = True
        self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Keys waiting to be handed out, ready or delayed (each counted once)."""
        waiting = self._queued | self._dirty | set(self._due)
        return len(waiting)

    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)
