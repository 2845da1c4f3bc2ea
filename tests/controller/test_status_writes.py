"""How many API writes one cluster lifecycle costs, and when status writes happen.

A timeline drives the reconciler as the controller does: once per event (the
informer delivers every write at once here) and again whenever a reconcile
asks to be requeued. The lifecycle is start, ``scale(4)`` with workers that
become ready one after another, stop; writes are counted at the recording
client. Upstream's KubeController makes 18 writes for the same lifecycle on the
emulator (``benchmarks/bench_kube_upstream.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from jhub_gateway.controller.status import must_write_now

from .fakes import exited, running, set_pod_status
from .test_reconcile_unit import KEY, SETTINGS, T0, World

UPSTREAM_WRITES = 18
WRITES = ("create", "status", "delete", "deletecollection", "patch")


class Timeline:
    """Reconciles at events and at the requeue times the reconciler asks for."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.due: float | None = None
        self.writes: list[tuple[float, str, str]] = []  # (time, verb, plural)

    async def at(self, when: float, change: Callable[[], object] | None = None) -> None:
        """Run the requeues that fall due before ``when``, then apply ``change`` and reconcile."""
        while self.due is not None and self.due <= when:
            self.w.now, self.due = self.due, None
            await self._reconcile()
        self.w.now = when
        if change is not None:
            change()
        await self._reconcile()

    async def _reconcile(self) -> None:
        for _ in range(5):  # our own writes come back as events and wake the key again
            after = await self.w.run()
            self.writes += [
                (self.w.now, c[0], c[1]) for c in self.w.client.take() if c[0] in WRITES
            ]
            if after is not None:
                due = self.w.now + after
                self.due = due if self.due is None else min(self.due, due)
            if not self.w.client.pending:
                return
            self.w.sync()

    def status_writes(self) -> list[float]:
        return [t for t, verb, _ in self.writes if verb == "status"]


def _ready(w: World, name: str, ip: str) -> Callable[[], object]:
    return lambda: set_pod_status(w.cache, "ns", name, running(ip))


async def _scheduler_up(ready_at: float, replicas: int = 0) -> tuple[World, Timeline]:
    """A cluster created at T0 + 1 whose scheduler pod is ready at ``ready_at``."""
    w = World(replicas=replicas) if replicas else World()
    t = Timeline(w)
    await t.at(T0 + 1)  # created: children made, the Pending status held back
    await t.at(ready_at, _ready(w, "dask-scheduler-c1", "10.0.0.5"))
    return w, t


async def test_a_start_scale_stop_lifecycle_writes_less_than_upstream() -> None:
    w, t = await _scheduler_up(T0 + 1.8)
    assert w.status["phase"] == "Running"
    assert t.status_writes() == [T0 + 1.8]  # Pending was never written on its own
    await t.at(T0 + 10, lambda: w.edit(replicas=4))  # the heartbeat of scale(4)
    workers = w.workers()
    assert len(workers) == 4
    for i, name in enumerate(workers):  # ready one after another, 3 s after creation
        await t.at(T0 + 13 + i * 0.5, _ready(w, name, f"10.0.1.{i}"))
    assert w.status["replicas"] == 4
    # The last worker's readiness is written the moment it is seen, not batched.
    assert t.status_writes()[-1] == T0 + 14.5
    await t.at(T0 + 20, lambda: w.edit(active=False))
    assert w.status["phase"] == "Stopping"
    for name in list(w.cache.children("Pod", KEY)):
        await t.at(T0 + 21, lambda n=name: w.cache.apply(  # type: ignore[misc]
            "Pod", "DELETED", w.cache.children("Pod", KEY)[n]))  # fmt: skip
    await t.at(T0 + 30)
    assert w.status["phase"] == "Stopped"

    statuses = t.status_writes()
    # Running, the scale in flight (once, after the delay), 4 workers, Stopping, Stopped.
    assert statuses == [T0 + 1.8, T0 + 10 + SETTINGS.progress_status_delay, T0 + 14.5,
                        T0 + 20, T0 + 21]  # fmt: skip
    # 2 shared Middlewares are made once per namespace, not per cluster.
    per_cluster = [x for x in t.writes if x[2] != "middlewares"]
    assert len(per_cluster) == 5 + 4 + 1 + len(statuses) == 15
    assert len(per_cluster) < UPSTREAM_WRITES


async def test_held_progress_is_written_after_the_delay_without_another_event() -> None:
    w, t = await _scheduler_up(T0 + 1.5, replicas=2)
    first, second = w.workers()
    await t.at(T0 + 4, _ready(w, first, "10.0.1.1"))
    assert w.status["replicas"] == 0  # 1 of 2 ready: progress, held
    assert t.due == T0 + 4 + SETTINGS.progress_status_delay
    await t.at(T0 + 9)  # only the requeue ran in between
    assert w.status["replicas"] == 1
    assert t.status_writes() == [T0 + 1.5, T0 + 4 + SETTINGS.progress_status_delay]


async def test_scale_down_is_written_when_the_count_is_reached() -> None:
    w, t = await _scheduler_up(T0 + 1.5, replicas=2)
    a, b = w.workers()
    await t.at(T0 + 3, _ready(w, a, "10.0.1.1"))
    await t.at(T0 + 3.2, _ready(w, b, "10.0.1.2"))
    assert w.status["replicas"] == 2
    await t.at(T0 + 10, lambda: w.edit(replicas=1))
    writes = len(t.status_writes())
    await t.at(T0 + 10.5, lambda: set_pod_status(w.cache, "ns", a, exited(0)))  # retired
    assert w.status["replicas"] == 1 and len(t.status_writes()) == writes + 1
    assert t.status_writes()[-1] == T0 + 10.5


def test_only_progress_may_wait() -> None:
    pending = {"phase": "Pending", "reason": "SchedulerStarting"}
    assert not must_write_now({}, pending, scaling=False)
    assert must_write_now(pending, {"phase": "Failed"}, scaling=False)
    up = {"phase": "Running", "schedulerAddress": "tls://10.0.0.5:8786", "replicas": 0}
    assert must_write_now(pending, up, scaling=True)
    assert not must_write_now(up, {**up, "replicas": 1, "observedGeneration": 2}, scaling=True)
    assert must_write_now(up, {**up, "replicas": 2}, scaling=False)
    assert must_write_now(up, {**up, "schedulerAddress": "tls://10.0.0.6:8786"}, scaling=True)
    assert must_write_now(up, {**up, "phase": "Stopping"}, scaling=False)
