"""Lease-based leader election against the Kubernetes API emulator.

Expiry and renewal are driven by a fake clock, one attempt at a time; the tests
of the ``run()`` loop use short real durations only where the loop itself is
what is tested (release on stop, loss, failure), and wait for conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from jhub_gateway.controller.leader import LeaderElector
from jhub_gateway.kube.client import LEASES, KubeClient
from tests.kube.apiserver import KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "default"
TIMING = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}
_lease_ids = itertools.count()


class FakeClock:
    """The elector's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def lease() -> str:
    return f"controller-{next(_lease_ids)}"


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> float:
    """Wait for ``condition``; return how long it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Candidate:
    """An elector running in its own task, recording what its callbacks saw."""

    def __init__(self, client: KubeClient, lease: str, identity: str, **timing: float) -> None:
        self.elector = LeaderElector(client, lease, NS, identity, **{**TIMING, **timing})
        self.started = 0
        self.stopped = 0
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None

    async def _lead(self) -> None:
        self.started += 1
        try:
            await asyncio.Event().wait()  # work until cancelled
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def _stopped(self) -> None:
        self.stopped += 1

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(self._lead, self._stopped))
        return self

    @property
    def leading(self) -> bool:
        return self.elector.is_leader and self.started > self.stopped

    async def stop(self) -> None:
        self.elector.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def candidates(*cands: Candidate) -> AsyncIterator[tuple[Candidate, ...]]:
    for cand in cands:
        cand.start()
    try:
        yield cands
    finally:
        for cand in cands:
            await cand.stop()


async def holder(client: KubeClient, lease: str) -> Any:
    return (await client.get(LEASES, lease, NS))["spec"].get("holderIdentity")


async def test_a_renewing_holder_keeps_the_lease_and_loses_it_a_lease_duration_after(
    client: KubeClient, lease: str
) -> None:
    clock = FakeClock()
    a = LeaderElector(client, lease, NS, "a", **TIMING, clock=clock)
    b = LeaderElector(client, lease, NS, "b", **TIMING, clock=clock)
    assert await a.try_acquire_or_renew() and a.is_leader
    # Renewing within every lease duration, a keeps it for many lease durations.
    for _ in range(10):
        clock.advance(0.75 * TIMING["lease_duration"])
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        assert a.is_leader and not b.is_leader
    assert await holder(client, lease) == "a"
    # a falls silent: b waits a whole lease duration from the last change it saw.
    clock.advance(TIMING["lease_duration"] - 0.01)
    assert not await b.try_acquire_or_renew()
    clock.advance(0.01)
    assert await b.try_acquire_or_renew() and b.is_leader
    assert await holder(client, lease) == "b"
    # a, back, sees b's fresh record and does not take it back.
    assert not await a.try_acquire_or_renew() and not a.is_leader
    spec = (await client.get(LEASES, lease, NS))["spec"]
    assert spec["leaseTransitions"] == 1


async def test_a_silent_holder_is_replaced_a_lease_duration_after_we_first_saw_it(
    client: KubeClient, lease: str
) -> None:
    # A holder that never renews (as if its process died without releasing).
    await client.create(LEASES, {
        "metadata": {"name": lease, "namespace": NS},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 2,
                 "renewTime": "2020-01-01T00:00:00.000000Z"},
    }, NS)  # fmt: skip
    clock = FakeClock()
    b = LeaderElector(client, lease, NS, "b", **TIMING, clock=clock)
    # Not trusting the ghost's old timestamp: expiry is timed from our own observation.
    assert not await b.try_acquire_or_renew()
    clock.advance(1.99)
    assert not await b.try_acquire_or_renew()
    assert await holder(client, lease) == "ghost"
    clock.advance(0.01)
    assert await b.try_acquire_or_renew()
    assert await holder(client, lease) == "b"


async def test_exactly_one_of_two_leads_and_the_other_takes_over_on_release(
    client: KubeClient, lease: str
) -> None:
    a, b = Candidate(client, lease, "a"), Candidate(client, lease, "b")
    async with candidates(a, b):
        await until(lambda: a.leading or b.leading, "a leader")
        assert a.leading + b.leading == 1
        leader, standby = (a, b) if a.leading else (b, a)
        assert await holder(client, lease) == leader.elector.identity

        await leader.stop()  # releases the Lease on the way out
        assert (leader.started, leader.stopped, leader.cancelled) == (1, 1, True)
        took = await until(lambda: standby.leading, "takeover")
        assert took < TIMING["lease_duration"]  # released: no waiting for expiry
        assert await holder(client, lease) == standby.elector.identity
        spec = (await client.get(LEASES, lease, NS))["spec"]
        assert spec["leaseTransitions"] >= 1


async def test_losing_the_lease_cancels_leading_work(client: KubeClient, lease: str) -> None:
    a = Candidate(client, lease, "a")
    async with candidates(a):
        await until(lambda: a.leading, "a leads")
        current = await client.get(LEASES, lease, NS)
        current["spec"]["holderIdentity"] = "intruder"
        await client.replace(LEASES, lease, current, NS)
        await until(lambda: a.task is not None and a.task.done(), "run() to return")
        assert (a.started, a.stopped, a.cancelled) == (1, 1, True)
        assert not a.elector.is_leader
    assert await holder(client, lease) == "intruder"  # a loser does not "release"


class RacingClient(KubeClient):
    """Lets a rival write the Lease between this client's read and its write."""

    rival: LeaderElector | None = None

    async def replace(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        rival, self.rival = self.rival, None
        if rival is not None:
            assert await rival.try_acquire_or_renew()
        return await super().replace(*args, **kwargs)


async def test_a_conflicting_update_does_not_make_two_leaders(
    kube: KubeCluster, client: KubeClient, lease: str
) -> None:
    # A free Lease (no holder), so that both may try to take it.
    await client.create(
        LEASES, {"metadata": {"name": lease, "namespace": NS}, "spec": {"leaseDurationSeconds": 2}}
    )
    a = LeaderElector(client, lease, NS, "a", **TIMING)
    racing = await RacingClient.connect(kube.kubeconfig)
    assert isinstance(racing, RacingClient)
    async with racing:
        b = LeaderElector(racing, lease, NS, "b", **TIMING)
        racing.rival = a
        assert not await b.try_acquire_or_renew()  # read free, then lost the write: Conflict
        assert a.is_leader and not b.is_leader
        assert await holder(client, lease) == "a"


async def test_leading_failure_is_raised_and_the_lease_released(
    client: KubeClient, lease: str
) -> None:
    elector = LeaderElector(client, lease, NS, "a", **TIMING)
    stopped = asyncio.Event()

    async def lead() -> None:
        raise ValueError("controller crashed")

    async def on_stopped() -> None:
        stopped.set()

    with pytest.raises(ValueError, match="controller crashed"):
        await asyncio.wait_for(elector.run(lead, on_stopped), 10)
    assert stopped.is_set() and not elector.is_leader
    assert not await holder(client, lease)


async def test_stop_while_campaigning_returns_without_leading(
    client: KubeClient, lease: str
) -> None:
    a, b = Candidate(client, lease, "a"), Candidate(client, lease, "b")
    attempts = 0
    try_once = b.elector.try_acquire_or_renew

    async def counted() -> bool:
        nonlocal attempts
        attempts += 1
        return await try_once()

    b.elector.try_acquire_or_renew = counted  # type: ignore[method-assign]
    async with candidates(a):
        await until(lambda: a.leading, "a leads")
        async with candidates(b):
            await until(lambda: attempts >= 3, "b to try a few times")
        assert (b.started, b.stopped) == (0, 0)
        assert await holder(client, lease) == "a"


@pytest.mark.parametrize(
    "timing",
    [
        {"lease_duration": 1, "renew_deadline": 2, "retry_period": 0.5},
        {"lease_duration": 3, "renew_deadline": 2, "retry_period": 2},
    ],
)
async def test_inconsistent_timing_is_rejected(
    client: KubeClient, timing: dict[str, float]
) -> None:
    with pytest.raises(ValueError):
        LeaderElector(client, "x", NS, "a", **timing)
