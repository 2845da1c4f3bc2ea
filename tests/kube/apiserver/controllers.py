"""Background controllers: garbage collector (ownerReferences) and namespace cleanup.

Each controller runs as one asyncio task woken by store events; a pass scans the
(small) store and issues ordinary verbs, so its effects show up in watches like
any client's writes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

from . import errors
from .resources import ResourceType
from .store import Event, StorageKey
from .verbs import NS_KEY, Api, meta_deleting

log = logging.getLogger(__name__)


class Controller:
    """Runs ``sync()`` after store events that ``interested`` accepts (debounced)."""

    debounce = 0.02
    period: float | None = None  # also run every ``period`` seconds (time-driven kinds)

    def __init__(self, api: Api) -> None:
        self.api = api
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # completed ``sync()`` passes (tests wait on it)
        api.store.listeners.append(self._on_event)

    def interested(self, key: StorageKey, event: Event) -> bool:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def _on_event(self, key: StorageKey, event: Event) -> None:
        if self.interested(key, event):
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def stop(self) -> None:
        self.api.store.listeners.remove(self._on_event)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.period)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(self.debounce)
            self._wake.clear()
            try:
                self.sync()
                self.passes += 1
            except Exception:
                log.exception("controller %s pass failed", type(self).__name__)
                self._wake.set()
                await asyncio.sleep(0.5)

    # -- helpers for subclasses -------------------------------------------------

    def objects(self) -> list[tuple[ResourceType, dict[str, Any]]]:
        out = []
        for key in self.api.store.keys():
            rt = self.api.registry.by_storage(key)
            if rt is not None:
                out += [(rt, o) for o in self.api.store.items(key)]
        return out

    def delete(self, rt: ResourceType, obj: dict[str, Any], policy: str = "Background") -> None:
        meta = obj["metadata"]
        try:
            self.api.delete(rt, meta.get("namespace", ""), meta["name"],
                            {"propagationPolicy": policy})  # fmt: skip
        except errors.ApiError as exc:
            if exc.code != 404:
                raise

    def rewrite(
        self, rt: ResourceType, obj: dict[str, Any], change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Apply ``change`` to a copy of the stored object and commit it (no-op if gone)."""
        meta = obj["metadata"]
        current = self.api.store.get(rt.storage_key, meta.get("namespace", ""), meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return
        new = copy.deepcopy(current)
        change(new)
        self.api._commit(rt, current, new, None)


def _drop_finalizer(name: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        obj["metadata"]["finalizers"] = [
            f for f in obj["metadata"].get("finalizers") or [] if f != name
        ]

    return change


def _drop_owner(uids: set[str]) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r["uid"] not in uids]
        if refs:
            obj["metadata"]["ownerReferences"] = refs
        else:
            obj["metadata"].pop("ownerReferences", None)

    return change


class GarbageCollector(Controller):
    """Deletes dependants of vanished owners; implements Foreground/Orphan finalizers."""

    def interested(self, key: StorageKey, event: Event) -> bool:
        meta = event.obj["metadata"]
        return (
            event.type == "DELETED"
            or bool(meta.get("deletionTimestamp"))
            or (event.type == "ADDED" and bool(meta.get("ownerReferences")))
        )

    def sync(self) -> None:
        objs = self.objects()
        uids = {o["metadata"]["uid"] for _, o in objs}
        dependants: dict[str, list[tuple[ResourceType, dict[str, Any]]]] = {}
        for rt, obj in objs:
            refs = obj["metadata"].get("ownerReferences") or []
            for ref in refs:
                dependants.setdefault(ref.get("uid", ""), []).append((rt, obj))
            absent = {r.get("uid", "") for r in refs} - uids
            if not absent:
                continue
            if len(absent) == len({r.get("uid", "") for r in refs}):
                if not meta_deleting(obj):
                    self.delete(rt, obj)
            else:
                self.rewrite(rt, obj, _drop_owner(absent))
        for rt, owner in objs:
            meta = owner["metadata"]
            finalizers = meta.get("finalizers") or []
            if not meta_deleting(owner):
                continue
            deps = dependants.get(meta["uid"], [])
            if "orphan" in finalizers:
                for drt, dep in deps:
                    self.rewrite(drt, dep, _drop_owner({meta["uid"]}))
                self.rewrite(rt, owner, _drop_finalizer("orphan"))
            elif "foregroundDeletion" in finalizers:
                if self._foreground(meta["uid"], deps):
                    self.rewrite(rt, owner, _drop_finalizer("foregroundDeletion"))

    def _foreground(self, uid: str, deps: list[tuple[ResourceType, dict[str, Any]]]) -> bool:
        """Delete dependants; True once none that block owner deletion remain."""
        blocking = False
        for drt, dep in deps:
            if not meta_deleting(dep):
                self.delete(drt, dep, "Foreground")
            dm = dep["metadata"]
            if self.api.store.get(drt.storage_key, dm.get("namespace", ""), dm["name"]) is None:
                continue
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                   for r in dm.get("ownerReferences") or []):  # fmt: skip
                blocking = True
        return not blocking


class NamespaceController(Controller):
    """Empties a terminating namespace, then removes it."""

    def interested(self, key: StorageKey, event: Event) -> bool:
        return key == NS_KEY or event.type == "DELETED"

    def sync(self) -> None:
        store = self.api.store
        for ns in list(store.items(NS_KEY)):
            if not meta_deleting(ns):
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for key in store.keys():
                rt = self.api.registry.by_storage(key)
                if rt is None or not rt.namespaced:
                    continue
                for obj in list(store.items(key, name)):
                    remaining += 1
                    if not meta_deleting(obj):
                        self.delete(rt, obj)
            if remaining == 0 and not ns["metadata"].get("finalizers"):
                ns_rt = self.api.registry.by_storage(NS_KEY)
                assert ns_rt is not None
                self.api._remove(ns_rt, ns)
