"""A small TTL cache whose misses are computed once, however many callers wait.

The JupyterHub authenticator keys it by a hash of the token, so raw tokens
never become dictionary keys (and never show up in a debugger dump or log).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


def token_key(token: str) -> str:
    """The cache key for a credential: a SHA-256 hex digest, never the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class SingleFlightCache(Generic[V]):
    """Maps keys to values for ``ttl`` seconds; concurrent misses share one lookup.

    Failed lookups raise to every waiter. ``cache_errors`` lists exception types
    that are remembered like values (e.g. "this token is invalid"), so a client
    retrying a bad token does not turn into one hub request per retry; other
    errors (the hub being down) are never cached.
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int = 10_000,
        cache_errors: tuple[type[BaseException], ...] = (),
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.cache_errors = cache_errors
        # told hit (True) or miss (False) for every lookup; metrics count them
        self._on_lookup = on_lookup
        self._entries: dict[str, tuple[float, V | BaseException]] = {}
        self._inflight: dict[str, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    async def get(self, key: str, compute: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            expires, value = entry
            if expires > time.monotonic():
                if self._on_lookup is not None:
                    self._on_lookup(True)
                if isinstance(value, BaseException):
                    # drop the stored traceback so repeated raises do not grow it
                    raise value.with_traceback(None)
                return value
            del self._entries[key]
        if self._on_lookup is not None:
            self._on_lookup(False)
        pending = self._inflight.get(key)
        if pending is not None:
            # shield: one impatient waiter being cancelled must not cancel the lookup
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if isinstance(exc, self.cache_errors):
                self._store(key, exc)
            future.set_exception(exc)
            # mark retrieved so an unawaited future does not log "never retrieved"
            future.exception()
            raise
        else:
            self._store(key, value)
            future.set_result(value)
            return value
        finally:
            self._inflight.pop(key, None)

    def _store(self, key: str, value: V | BaseException) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                # still full of live entries: drop the oldest insertion (dicts keep order)
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (now + self.ttl, value)
