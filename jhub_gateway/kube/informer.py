"""A list-then-watch cache of one resource collection.

The informer lists the collection, then watches from the list's
resourceVersion, resuming each time the server ends a watch (every
``watch_timeout`` seconds) from the last version seen, bookmarks included.
A ``Gone`` (the version was compacted away) or any other failure leads to a
fresh list; consecutive failures back off exponentially so an unreachable or
broken API server never sees a tight loop. On relist the whole cache is
replaced in one assignment, and the differences to the previous cache are
reported as ADDED/MODIFIED/DELETED events, so no deletion that happened
during an outage is lost.

Handlers receive ``(event_type, object)`` synchronously after the cache is
updated. They are meant to map events to work-queue keys, nothing more: they
must not block, must not mutate the object, and their exceptions are logged
and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .client import Gone, KubeClient, Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Handler = Callable[[str, Obj], None]


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informer:
    """Keeps ``cache`` in step with the API server; see the module docstring.

    Read ``informer.cache`` afresh on each use: a relist replaces the dict.
    """

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
        on_change: Handler | None = None,
        watch_timeout: int = 300,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.cache: dict[Key, Obj] = {}
        self.resource_version = ""
        self.relists = 0  # completed lists, the initial one included
        self.watches = 0  # watch streams opened
        self._handlers: list[Handler] = [on_change] if on_change else []
        self._failures = 0
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._what = resource.path(namespace)

    # -- public -----------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get((namespace, name))

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start listing and watching in a task owned by this informer.

        After a ``stop()``, starting again relists: ``synced()`` waits for that
        fresh list, and its differences to the kept cache are reported.
        """
        if self._task is not None:
            raise RuntimeError(f"informer for {self._what} already started")
        self._synced.clear()
        self._failures = 0
        self._task = asyncio.create_task(self._run(), name=f"informer {self._what}")

    async def stop(self) -> None:
        """Stop watching and wait until the task is gone; the cache is kept."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def synced(self) -> None:
        """Return once the initial list is in the cache; raise if stopped before that."""
        task = self._task
        if self._synced.is_set():
            return
        if task is None:
            raise RuntimeError(f"informer for {self._what} is not running")
        waiter = asyncio.create_task(self._synced.wait())
        try:
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self._synced.is_set():
            raise RuntimeError(f"informer for {self._what} stopped before its initial sync")

    # -- the loop ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._relist()
                await self._watch_forever()
            except Gone:
                log.info("watch of %s expired, relisting", self._what)
                # A healthy watch outliving the server's history is routine:
                # relist at once. Repeated Gone answers back off like errors.
                delay = self._backoff() if self._failures else 0.0
            except Exception as exc:  # any failure must end in a relist, never a dead informer
                log.warning("list/watch of %s failed (%s: %s), relisting", self._what,
                            type(exc).__name__, exc)  # fmt: skip
                delay = self._backoff()
            self._failures += 1
            if delay:
                await asyncio.sleep(delay)

    def _backoff(self) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2**self._failures))

    async def _relist(self) -> None:
        items, version = await self.client.list(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        fresh = {key_of(obj): obj for obj in items}
        previous, self.cache = self.cache, fresh
        self.resource_version = version
        self.relists += 1
        log.debug("listed %d objects of %s at version %s", len(fresh), self._what, version)
        self._synced.set()
        for key, old in previous.items():
            if key not in fresh:
                self._notify("DELETED", old)
        for key, obj in fresh.items():
            old_obj = previous.get(key)
            if old_obj is None:
                self._notify("ADDED", obj)
            elif _version(old_obj) != _version(obj):
                self._notify("MODIFIED", obj)

    async def _watch_forever(self) -> None:
        """Watch, resuming after each server-side timeout; returns only by raising."""
        while True:
            self.watches += 1
            events = self.client.watch(
                self.resource,
                self.namespace,
                resource_version=self.resource_version,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                timeout_seconds=self.watch_timeout,
            )
            async with contextlib.aclosing(events):
                async for etype, obj in events:
                    self._failures = 0
                    self._apply(etype, obj)
            self._failures = 0
            log.debug("watch of %s ended, resuming at %s", self._what, self.resource_version)

    def _apply(self, etype: str, obj: Obj) -> None:
        version = _version(obj)
        if etype == "BOOKMARK":
            if version:
                self.resource_version = version
            return
        key = key_of(obj)
        if etype == "DELETED":
            self.cache.pop(key, None)
        elif etype in ("ADDED", "MODIFIED"):
            self.cache[key] = obj
        else:
            log.warning("ignoring watch event of unknown type %r on %s", etype, self._what)
            return
        if version:
            self.resource_version = version
        self._notify(etype, obj)

    def _notify(self, etype: str, obj: Obj) -> None:
        for handler in self._handlers:
            try:
                handler(etype, obj)
            except Exception:
                log.exception("informer handler for %s failed on %s", self._what, etype)
