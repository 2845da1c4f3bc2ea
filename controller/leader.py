"""Leader election over a ``coordination.k8s.io/v1`` Lease, so two controller replicas are safe.

The Lease records the holder and when it last renewed. Every write is a PUT
carrying the resourceVersion that was read, so of two candidates racing for
the same Lease exactly one succeeds and the other gets ``Conflict``.

Expiry is judged on this process's monotonic clock, never by comparing the
holder's timestamps with ours: a Lease counts as expired when its record has
not changed for ``leaseDurationSeconds`` since *we* last saw it change. The
leader gives up when it has not renewed for ``renew_deadline`` seconds, which
is shorter than ``lease_duration``, so it stops working before anyone else can
consider the Lease free. On a clean stop the leader releases the Lease (empty
holder) and a standby takes over on its next retry instead of waiting it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from jhub_gateway.kube.client import (
    LEASES,
    AlreadyExists,
    Conflict,
    KubeClient,
    KubeError,
    NotFound,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Leading = Callable[[], Coroutine[Any, Any, None]]
Callback = Callable[[], Awaitable[None]]


def _micro_time() -> str:
    """A Kubernetes MicroTime for now (informational only: expiry uses our clock)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaign for Lease ``namespace/name`` as ``identity``; see the module docstring.

    ``run(on_started_leading, on_stopped_leading)`` blocks until leadership is
    lost, ``stop()`` is called, or the leading coroutine ends. The leading
    coroutine runs as a task that is cancelled the moment leadership is lost.
    """

    def __init__(
        self,
        client: KubeClient,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        if not identity:
            raise ValueError("identity must not be empty")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_time = 0.0
        self._last_renew = 0.0
        self._is_leader = False
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # stop() or the leading task ending

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    def stop(self) -> None:
        """Ask ``run()`` to stop leading (releasing the Lease) or campaigning, and return."""
        self._stopping.set()
        self._wake.set()

    async def run(self, on_started_leading: Leading, on_stopped_leading: Callback | None = None
                  ) -> None:  # fmt: skip
        """Campaign, lead, and return when leadership ends (re-raising a leading failure)."""
        if not self._stopping.is_set():
            self._wake.clear()  # left set by a previous term's leading task; may run again
        try:
            if not await self._campaign():
                return
            log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
            leading = asyncio.create_task(on_started_leading(), name=f"leading {self.name}")
            leading.add_done_callback(lambda _: self._wake.set())
            try:
                await self._keep_renewing(leading)
            finally:
                leading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({leading})
                await self._release()
                if on_stopped_leading is not None:
                    await on_stopped_leading()
            failure = None if leading.cancelled() else leading.exception()
            if failure is not None:
                raise failure
        finally:
            await self._release()

    # -- phases -------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, seconds))

    async def _campaign(self) -> bool:
        while not self._stopping.is_set():
            if await self.try_acquire_or_renew():
                return True
            await self._pause(self.retry_period)
        return False

    async def _keep_renewing(self, leading: asyncio.Task[None]) -> None:
        """Renew every ``retry_period`` until stopped, the leader task ends, or a deadline passes."""
        while True:
            await self._pause(self.retry_period)
            if self._stopping.is_set() or leading.done():
                return
            deadline = self._last_renew + self.renew_deadline
            renewed = False
            while not renewed and self._clock() < deadline and not self._stopping.is_set():
                try:
                    renewed = await asyncio.wait_for(
                        self.try_acquire_or_renew(), deadline - self._clock()
                    )
                except asyncio.TimeoutError:
                    break
                if not renewed and self._held_by_other():
                    break
                if not renewed:
                    await self._pause(min(self.retry_period, deadline - self._clock()))
            if not renewed and not self._stopping.is_set():
                self._is_leader = False
                log.warning("%s lost the lease %s/%s", self.identity, self.namespace, self.name)
                return

    # -- one attempt --------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One read-modify-write of the Lease; True if we hold it afterwards."""
        try:
            return await self._try_acquire_or_renew()
        except (Conflict, AlreadyExists):
            # Another candidate wrote between our read and our write: it wins.
            log.debug("%s lost a race for lease %s", self.identity, self.name)
        except KubeError as exc:
            log.warning("%s could not update lease %s/%s: %s", self.identity,
                        self.namespace, self.name, exc)  # fmt: skip
        self._is_leader = False
        return False

    async def _try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFound:
            created = await self.client.create(LEASES, self._new_lease(), self.namespace)
            return self._won(created)
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec):
            self._is_leader = False
            return False
        now = _micro_time()
        new_spec = dict(spec)
        new_spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=math.ceil(self.lease_duration),
            renewTime=now,
        )
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = new_spec  # metadata.resourceVersion is kept: the write is conditional
        updated = await self.client.replace(LEASES, self.name, lease, self.namespace)
        return self._won(updated)

    async def _release(self) -> None:
        """Hand the Lease back (best effort, bounded) if we still hold it."""
        if not self._is_leader:
            return
        self._is_leader = False
        try:
            await asyncio.wait_for(self._write_release(), self.renew_deadline)
        except (KubeError, asyncio.TimeoutError) as exc:
            log.warning("%s could not release lease %s: %s", self.identity, self.name, exc)

    async def _write_release(self) -> None:
        lease = await self.client.get(LEASES, self.name, self.namespace)
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return
        now = _micro_time()
        lease["spec"] = {
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0),
        }
        await self.client.replace(LEASES, self.name, lease, self.namespace)
        log.info("%s released lease %s/%s", self.identity, self.namespace, self.name)

    # -- bookkeeping ----------------------------------------------------------------

    def _new_lease(self) -> Obj:
        now = _micro_time()
        return {
            "apiVersion": LEASES.api_version,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": math.ceil(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _won(self, lease: Obj) -> bool:
        self._observe(lease.get("spec") or {})
        self._is_leader = True
        self._last_renew = self._clock()
        return True

    def _observe(self, spec: Obj) -> None:
        record = tuple(
            spec.get(field)
            for field in ("holderIdentity", "renewTime", "acquireTime", "leaseTransitions")
        )
        if record != self._observed:
            self._observed = record
            self._observed_time = self._clock()

    def _expired(self, spec: Obj) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return self._observed_time + duration <= self._clock()

    def _held_by_other(self) -> bool:
        holder = self._observed[0] if self._observed else None
        return bool(holder) and holder != self.identity
