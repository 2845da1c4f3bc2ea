"""Bookkeeping of pre-started scheduler and worker processes (pure: no I/O, no clock).

A pooled process can only become a scheduler (or worker) that would have been
started the same way: the same role, OS identity (uid isolation applies before
the claim) and environment (the interpreter imported with it). That is the
``PoolKey``. Other scheduler or worker commands never use a pool.

How many processes a key keeps follows demand: ``size`` once a key has been
asked for, one more for every claim that found the key empty (up to half of
``max_total``); after ``idle_timeout`` without a new cluster of that key, back
to ``size``, and after another one, none. The total over all keys never
exceeds ``max_total``; when it is reached, idle processes of the keys asked
for longest ago make room for keys asked for more recently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .accounts import Identity
from .processes import ProcessHandle

#: the commands a pooled interpreter stands in for, and its role
POOLABLE_COMMANDS: dict[tuple[str, ...], str] = {
    ("dask", "scheduler"): "scheduler",
    ("dask", "worker"): "worker",
}


@dataclass(frozen=True)
class PoolKey:
    role: str  # "scheduler" or "worker"
    identity: Identity | None
    environment: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        # environments can hold a user's secrets: never print the values
        who = f"uid {self.identity.uid}" if self.identity else "service user"
        return f"<PoolKey {self.role}, {who}, {len(self.environment)} env vars>"


def pool_key(
    identity: Identity | None, command: Sequence[str], environment: Mapping[str, str]
) -> PoolKey | None:
    """The key of a scheduler or worker; None when no pooled process can stand in for it."""
    role = POOLABLE_COMMANDS.get(tuple(command))
    if role is None:
        return None
    return PoolKey(role, identity, tuple(sorted(environment.items())))


@dataclass(repr=False)
class PooledProcess:
    key: PoolKey
    handle: ProcessHandle
    workdir: Path
    rundir: Path
    started: float
    claimed: bool = False

    def __repr__(self) -> str:
        return f"<PooledProcess pid={self.handle.pid} {self.key!r}>"


@dataclass
class _Demand:
    target: int
    last_asked: float


@dataclass
class Pool:
    size: int
    max_total: int
    idle_timeout: float
    idle: dict[PoolKey, list[PooledProcess]] = field(default_factory=dict)
    starting: dict[PoolKey, int] = field(default_factory=dict)
    demand: dict[PoolKey, _Demand] = field(default_factory=dict)

    # -- claims ------------------------------------------------------------------------------
    def take(self, key: PoolKey, now: float) -> PooledProcess | None:
        """The oldest idle process of ``key`` (most likely done importing), marked claimed."""
        demand = self.demand.get(key)
        known = demand is not None
        if demand is None:
            demand = self.demand[key] = _Demand(self.size, now)
        demand.last_asked = now
        entries = self.idle.get(key)
        if not entries:
            if known and self.size > 0:  # a cold start a bigger pool would have saved
                demand.target = min(demand.target + 1, self.max_per_key())
            return None
        entry = entries.pop(0)
        if not entries:
            del self.idle[key]
        entry.claimed = True
        return entry

    def max_per_key(self) -> int:
        """How far one key may grow: half the total, so one burst of scale-ups (or
        starts) cannot take every place."""
        return max(self.size, self.max_total // 2)

    def want(self, key: PoolKey, now: float) -> None:
        """Keep processes of ``key`` from now on, without claiming one (e.g. at start)."""
        if key not in self.demand:
            self.demand[key] = _Demand(self.size, now)

    # -- refilling and shrinking -------------------------------------------------------------
    def to_start(self) -> list[PoolKey]:
        """Keys to start one process for each (one entry per process), within the bounds."""
        room = self.max_total - self.total()
        starts: list[PoolKey] = []
        for key, demand in sorted(
            self.demand.items(), key=lambda kd: kd[1].last_asked, reverse=True
        ):
            for _ in range(max(demand.target - self._have(key), 0)):
                if room <= 0:
                    return starts
                starts.append(key)
                room -= 1
        return starts

    def to_stop(self, now: float) -> list[PooledProcess]:
        """Idle processes to stop, removed from the pool; forgets keys nobody asks for."""
        stopped: list[PooledProcess] = []
        for key, demand in list(self.demand.items()):
            if now - demand.last_asked >= self.idle_timeout:
                # one step per quiet period: a grown pool back to size, then none
                demand.target = self.size if demand.target > self.size else 0
                demand.last_asked = now
            entries = self.idle.get(key, [])
            while len(entries) > demand.target:
                stopped.append(entries.pop())
            if not entries:
                self.idle.pop(key, None)
            if demand.target == 0 and not self.starting.get(key):
                del self.demand[key]
        return stopped + self._evict_for_recent()

    def _evict_for_recent(self) -> list[PooledProcess]:
        """Idle processes of keys asked for long ago, making room for keys asked for since."""
        evicted: list[PooledProcess] = []
        by_recency = sorted(self.demand.items(), key=lambda kd: kd[1].last_asked, reverse=True)
        for key, demand in by_recency:
            missing = demand.target - self._have(key)
            while missing > 0 and self.total() >= self.max_total:
                victims = [
                    k
                    for k, es in self.idle.items()
                    if es and k != key and self._asked(k) < demand.last_asked
                ]
                if not victims:
                    break
                victim = min(victims, key=self._asked)
                evicted.append(self.idle[victim].pop())
                if not self.idle[victim]:
                    del self.idle[victim]
                missing -= 1
        return evicted

    def _have(self, key: PoolKey) -> int:
        return len(self.idle.get(key, ())) + self.starting.get(key, 0)

    def _asked(self, key: PoolKey) -> float:
        demand = self.demand.get(key)
        return demand.last_asked if demand is not None else float("-inf")

    def started(self, key: PoolKey) -> None:
        self.starting[key] = self.starting.get(key, 0) + 1

    def ready(self, entry: PooledProcess | None, key: PoolKey) -> None:
        """A start of ``key`` finished: ``entry`` joins the pool (None: it failed)."""
        left = self.starting.get(key, 0) - 1
        if left > 0:
            self.starting[key] = left
        else:
            self.starting.pop(key, None)
        if entry is not None:
            self.idle.setdefault(key, []).append(entry)

    def remove(self, entry: PooledProcess) -> bool:
        """Drop an idle ``entry`` (e.g. it exited); False if it was not idle."""
        entries = self.idle.get(entry.key, [])
        if entry not in entries:
            return False
        entries.remove(entry)
        if not entries:
            del self.idle[entry.key]
        return True

    def drain(self) -> list[PooledProcess]:
        """Every idle process, removed from the pool (the service stops)."""
        entries = [e for es in self.idle.values() for e in es]
        self.idle.clear()
        self.demand.clear()
        return entries

    def total(self) -> int:
        return sum(map(len, self.idle.values())) + sum(self.starting.values())
