"""The pool's bookkeeping: keys, claims, bounds, growth with demand and shrinking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jhub_gateway.hub_service.backends.local.accounts import Identity
from jhub_gateway.hub_service.backends.local.pool import Pool, PooledProcess, PoolKey, pool_key
from jhub_gateway.hub_service.backends.local.processes import ProcessHandle
from jhub_gateway.runtime.claim import ClaimError, parse_claim

ALICE = Identity(200001, 200001)
BOB = Identity(200002, 200002)


def _key(identity: Identity | None = ALICE, **env: str) -> PoolKey:
    key = pool_key(identity, ["dask", "scheduler"], env)
    assert key is not None
    return key


def _entry(key: PoolKey, pid: int) -> PooledProcess:
    return PooledProcess(key, ProcessHandle(pid, 0.0, "log"), Path("w"), Path("w/run"), 0.0)


def _fill(pool: Pool, now: float) -> list[PooledProcess]:
    """Start (instantly) what the pool asks for; returns the new entries."""
    made = []
    for i, key in enumerate(pool.to_start()):
        pool.started(key)
        entry = _entry(key, 1000 + len(made) + i)
        pool.ready(entry, key)
        made.append(entry)
    return made


def test_only_the_default_scheduler_and_worker_commands_are_poolable():
    assert pool_key(ALICE, ["dask", "scheduler"], {}) is not None
    assert pool_key(ALICE, ["dask", "worker"], {}) != pool_key(ALICE, ["dask", "scheduler"], {})
    assert pool_key(ALICE, ["python", "-m", "distributed.cli.dask_scheduler"], {}) is None
    assert pool_key(ALICE, ["dask", "scheduler", "--foo"], {}) is None


def test_keys_separate_identities_and_environments():
    assert _key(ALICE) != _key(BOB)
    assert _key(ALICE, A="1") != _key(ALICE, A="2")
    assert _key(ALICE, A="1", B="2") == pool_key(ALICE, ("dask", "scheduler"), {"B": "2", "A": "1"})
    assert _key(None) != _key(ALICE)


def test_key_repr_never_shows_environment_values():
    assert "hunter2" not in repr(_key(ALICE, SECRET="hunter2"))
    assert "hunter2" not in repr(_entry(_key(ALICE, SECRET="hunter2"), 1))


def test_nothing_is_started_for_a_key_nobody_asked_for():
    assert Pool(1, 4, 600).to_start() == []


def test_first_ask_is_a_miss_then_the_pool_keeps_size_ready():
    pool = Pool(1, 4, 600)
    key = _key()
    assert pool.take(key, now=0) is None
    assert pool.to_start() == [key]
    (entry,) = _fill(pool, 0)
    assert pool.take(key, now=1) is entry and entry.claimed
    assert pool.take(key, now=1) is None  # claimed processes never come back


def test_want_keeps_processes_ready_before_any_claim():
    pool = Pool(2, 4, 600)
    key = _key(None)
    pool.want(key, now=0)
    assert pool.to_start() == [key, key]


def test_misses_grow_a_key_up_to_half_the_total():
    pool = Pool(1, 6, 600)
    key = _key()
    pool.want(key, now=0)
    for t in range(5):
        assert pool.take(key, now=t) is None  # a burst faster than the refill
    assert len(pool.to_start()) == 3


def test_the_total_bound_holds_across_keys():
    pool = Pool(2, 3, 600)
    for identity in (ALICE, BOB):
        pool.want(_key(identity), now=0)
    _fill(pool, 0)
    assert pool.total() == 3
    assert pool.to_start() == []


def test_a_recent_key_evicts_idle_processes_of_keys_asked_for_earlier():
    pool = Pool(1, 2, 600)
    alice, bob, carol = _key(ALICE), _key(BOB), _key(None)
    pool.want(alice, now=0)
    pool.want(bob, now=1)
    _fill(pool, 1)
    assert pool.to_stop(now=2) == []
    pool.take(carol, now=3)  # carol's first cluster: she should have one ready next time
    (evicted,) = pool.to_stop(now=3)
    assert evicted.key == alice  # asked for longest ago
    assert pool.to_start() == [carol]
    assert pool.total() == 1  # bob's


def test_starting_processes_count_towards_the_bounds():
    pool = Pool(1, 4, 600)
    key = _key()
    pool.want(key, now=0)
    pool.started(key)
    assert pool.to_start() == []
    assert pool.total() == 1
    pool.ready(None, key)  # that start failed
    assert pool.to_start() == [key]


def test_a_grown_pool_shrinks_back_then_stops_when_nobody_asks():
    pool = Pool(1, 8, 600)
    key = _key()
    pool.want(key, now=0)
    for t in range(3):
        pool.take(key, now=t)
    assert len(_fill(pool, 3)) == 4
    assert pool.to_stop(now=300) == []
    assert len(pool.to_stop(now=700)) == 3  # 600 s without a new cluster: back to pool_size
    assert pool.total() == 1 and pool.to_start() == []
    assert pool.to_stop(now=1000) == []
    assert len(pool.to_stop(now=1400)) == 1  # another 600 s: none kept
    assert pool.total() == 0 and pool.to_start() == []
    assert pool.take(key, now=1500) is None  # a new ask starts over at pool_size
    assert pool.to_start() == [key]


def test_remove_and_drain():
    pool = Pool(2, 4, 600)
    key = _key()
    pool.want(key, now=0)
    first, second = _fill(pool, 0)
    assert pool.remove(first) is True
    assert pool.remove(first) is False
    assert pool.drain() == [second]
    assert pool.total() == 0 and pool.to_start() == []


def test_pools_off_never_start_anything():
    pool = Pool(0, 4, 600)
    key = _key()
    for t in range(3):
        assert pool.take(key, now=t) is None
    assert pool.to_start() == []


def test_claim_lines_are_parsed_strictly():
    assert parse_claim(b'{"cluster_name": "c1", "args": ["--host", "127.3.0.2"]}\n') == (
        "c1",
        ["--host", "127.3.0.2"],
    )
    for bad in (b"not json", b"[]", b'{"args": []}', b'{"cluster_name": "c", "args": [1]}'):
        with pytest.raises(ClaimError):
            parse_claim(bad)
    assert json.loads(b'{"cluster_name": "c", "args": []}')["args"] == []
