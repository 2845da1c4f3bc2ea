"""A token bucket shared by every Kubernetes API call the controller makes.

A controller that reconciles hundreds of clusters after a restart must not
flood the API server; one global bucket (steady ``rate`` per second, bursts of
up to ``burst`` calls) bounds it whatever the number of worker tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """``await limiter.acquire()`` before each call; waits when the bucket is empty.

    Waiters reserve their token up front (the balance may go negative) and
    sleep for exactly the time it takes to refill it, so callers are served in
    arrival order without a lock or a polling loop.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    def try_acquire(self) -> bool:
        """Take a token if one is available now, without waiting."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def delay(self) -> float:
        """Reserve a token and return how long the caller must wait before using it."""
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.delay()
        if wait > 0:
            await asyncio.sleep(wait)
