"""Lease-based leader election against the Kubernetes API emulator, with short durations."""

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


async def test_exactly_one_of_two_leads_and_the_other_takes_over(
    client: KubeClient, lease: str
) -> None:
    a, b = Candidate(client, lease, "a"), Candidate(client, lease, "b")
    async with candidates(a, b):
        await until(lambda: a.leading or b.leading, "a leader")
        # Several renewals long, never two leaders at once.
        deadline = time.monotonic() + 2 * TIMING["lease_duration"]
        while time.monotonic() < deadline:
            assert a.leading + b.leading == 1
            await asyncio.sleep(0.02)
        leader, standby = (a, b) if a.leading else (b, a)
        assert await holder(client, lease) == leader.elector.identity

        await leader.stop()  # releases the Lease on the way out
        assert (leader.started, leader.stopped, leader.cancelled) == (1, 1, True)
        took = await until(lambda: standby.leading, "takeover")
        assert took < TIMING["lease_duration"]
        assert await holder(client, lease) == standby.elector.identity
        spec = (await client.get(LEASES, lease, NS))["spec"]
        assert spec["leaseTransitions"] >= 1


async def test_a_crashed_holder_is_replaced_only_after_the_lease_expires(
    client: KubeClient, lease: str
) -> None:
    # A holder that never renews (as if its process died without releasing).
    await client.create(LEASES, {
        "metadata": {"name": lease, "namespace": NS},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 2,
                 "renewTime": "2020-01-01T00:00:00.000000Z"},
    }, NS)  # fmt: skip
    (b,) = cands = (Candidate(client, lease, "b"),)
    async with candidates(*cands):
        took = await until(lambda: b.leading, "takeover from the ghost")
    # Not trusting the ghost's old timestamp: expiry is timed from our own observation.
    assert TIMING["lease_duration"] - 0.1 <= took < TIMING["lease_duration"] + 2


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
    async with candidates(a):
        await until(lambda: a.leading, "a leads")
        async with candidates(b):
            await asyncio.sleep(3 * TIMING["retry_period"])  # b tries a few times
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
