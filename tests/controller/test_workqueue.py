"""WorkQueue and RateLimiter: the controller's flow control, driven by a fake clock.

Only ``await get()`` and ``acquire()`` sleep in real time (the clock they are
given says when, the event loop waits); those few tests use short real delays.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from jhub_gateway.controller.workqueue import QueueClosed, QueueEmpty, WorkQueue
from jhub_gateway.kube.ratelimit import RateLimiter
from tests.polling import until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue(clock=clock)


def drain(queue: WorkQueue[str]) -> list[str]:
    """Every key ready now, in order (each one marked done)."""
    keys = []
    while True:
        try:
            key = queue.get_nowait()
        except QueueEmpty:
            return keys
        keys.append(key)
        queue.done(key)


# -- dedup and exclusivity ---------------------------------------------------------


def test_key_put_twice_is_handed_out_once(queue: WorkQueue[str]) -> None:
    queue.put("a")
    queue.put("b")
    queue.put("a")
    assert len(queue) == 2
    assert drain(queue) == ["a", "b"]
    assert len(queue) == 0


def test_key_in_processing_is_not_handed_out_until_done(queue: WorkQueue[str]) -> None:
    queue.put("a")
    assert queue.get_nowait() == "a"
    queue.put("a")
    queue.put("a")
    assert len(queue) == 1
    with pytest.raises(QueueEmpty):
        queue.get_nowait()
    queue.done("a")
    assert queue.get_nowait() == "a"
    queue.done("a")
    with pytest.raises(QueueEmpty):
        queue.get_nowait()


def test_done_without_new_put_does_not_requeue(queue: WorkQueue[str]) -> None:
    queue.put("a")
    key = queue.get_nowait()
    assert queue.processing() == {"a"}
    queue.done(key)
    assert queue.processing() == frozenset()
    assert len(queue) == 0
    with pytest.raises(QueueEmpty):
        queue.get_nowait()


def test_other_keys_flow_while_one_is_processing(queue: WorkQueue[str]) -> None:
    queue.put("a")
    queue.get_nowait()
    queue.put("a")
    queue.put("b")
    assert queue.get_nowait() == "b"


# -- delays --------------------------------------------------------------------------


def test_put_after_waits_for_the_clock(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.put_after("a", 5)
    assert len(queue) == 1
    clock.advance(4.9)
    assert drain(queue) == []
    clock.advance(0.2)
    assert drain(queue) == ["a"]


def test_put_after_keeps_the_earliest_request(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.put_after("a", 10)
    queue.put_after("a", 2)
    queue.put_after("a", 5)
    assert len(queue) == 1
    clock.advance(2)
    assert drain(queue) == ["a"]
    clock.advance(20)  # the superseded 10 s and 5 s requests are gone
    assert drain(queue) == []


def test_put_after_zero_is_immediate(queue: WorkQueue[str]) -> None:
    queue.put_after("a", 0)
    assert drain(queue) == ["a"]


def test_delayed_key_due_while_processing_waits_for_done(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.put("a")
    queue.get_nowait()
    queue.put_after("a", 1)
    clock.advance(1)
    assert drain(queue) == []
    queue.done("a")
    assert drain(queue) == ["a"]


def test_immediate_put_does_not_cancel_a_pending_delay(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    # A requested re-check (e.g. a start timeout) must still happen after an event.
    queue.put_after("a", 3)
    queue.put("a")
    assert drain(queue) == ["a"]
    clock.advance(3)
    assert drain(queue) == ["a"]


# -- backoff -------------------------------------------------------------------------


def test_backoff_doubles_per_failure_up_to_max(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue(backoff_base=0.1, backoff_max=1.0, clock=clock)
    delays = []
    for _ in range(6):
        delays.append(queue.put_backoff("a"))
        clock.advance(delays[-1] - 0.01)
        assert drain(queue) == []
        clock.advance(0.01)
        assert drain(queue) == ["a"]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert queue.failures("a") == 6


def test_default_backoff_is_base_0_1_max_300(queue: WorkQueue[str]) -> None:
    assert queue.put_backoff("a") == pytest.approx(0.1)
    for _ in range(30):
        delay = queue.put_backoff("a")
    assert delay == 300


def test_reset_backoff_starts_over_and_is_per_key(queue: WorkQueue[str]) -> None:
    for _ in range(3):
        queue.put_backoff("a")
    queue.put_backoff("b")
    queue.reset_backoff("a")
    assert queue.failures("a") == 0
    assert queue.failures("b") == 1
    assert queue.put_backoff("a") == pytest.approx(0.1)
    assert queue.put_backoff("b") == pytest.approx(0.2)


# -- async get and close ----------------------------------------------------------------


async def test_get_waits_for_a_put() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # the getter runs until it waits
    assert not getter.done()
    queue.put("a")
    assert await asyncio.wait_for(getter, 5) == "a"


async def test_get_wakes_when_a_delayed_key_falls_due() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_after("late", 5)  # must not make an earlier key wait behind it
    queue.put_after("soon", 0.05)
    start = time.monotonic()
    assert await asyncio.wait_for(getter, 5) == "soon"
    assert time.monotonic() - start >= 0.04


async def test_close_wakes_waiting_getters_and_refuses_keys() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)  # each getter runs until it waits
    assert not any(g.done() for g in getters)
    queue.close()
    for getter in getters:
        with pytest.raises(QueueClosed):
            await asyncio.wait_for(getter, 5)
    queue.put("a")
    assert queue.closed and len(queue) == 0
    with pytest.raises(QueueClosed):
        await queue.get()
    with pytest.raises(QueueClosed):
        queue.get_nowait()


async def test_workers_never_share_a_key_and_see_every_last_put() -> None:
    queue: WorkQueue[int] = WorkQueue()
    rng = random.Random(7)
    keys = range(10)
    active: set[int] = set()
    overlaps: list[int] = []
    last_put: dict[int, int] = {}
    last_start: dict[int, int] = {}
    tick = iter(range(1_000_000))

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except QueueClosed:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            last_start[key] = next(tick)
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            active.discard(key)
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(500):
        key = rng.choice(keys)
        last_put[key] = next(tick)
        queue.put(key)
        if rng.random() < 0.5:
            await asyncio.sleep(0)

    await until(lambda: not (len(queue) or queue.processing()), 10, 0.005, what="queue drained")
    queue.close()
    await asyncio.wait_for(asyncio.gather(*workers), 5)

    assert overlaps == []
    # Every key was processed (started) after the last time it was put.
    assert {k for k in last_put if last_start.get(k, -1) < last_put[k]} == set()


# -- rate limiter -------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_refills(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.1)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(100)  # refill caps at the burst size
    assert sum(limiter.try_acquire() for _ in range(10)) == 3


def test_rate_limiter_queues_waiters_in_arrival_order(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=4, burst=1, clock=clock)
    assert [limiter.delay() for _ in range(4)] == pytest.approx([0, 0.25, 0.5, 0.75])


async def test_rate_limiter_acquire_paces_calls() -> None:
    limiter = RateLimiter(rate=50, burst=5)
    start = time.monotonic()
    for _ in range(10):
        await limiter.acquire()
    # 5 from the burst, 5 more at 50/s take >= 0.1 s
    assert time.monotonic() - start >= 0.09


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0)])
def test_rate_limiter_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)
