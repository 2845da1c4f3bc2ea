"""Bookkeeping of one local cluster's processes (what the store persists)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from jhub_gateway.models import Cluster

from .accounts import Identity
from .addresses import LEGACY_HOST
from .processes import ProcessHandle

STARTING, RUNNING, CLOSING, TIMED_OUT = "starting", "running", "closing", "timed-out"


@dataclass
class WorkerProc:
    name: str
    handle: ProcessHandle
    status: str = STARTING
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "handle": self.handle.to_dict(),
            "status": self.status,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerProc:
        return cls(
            data["name"], ProcessHandle.from_dict(data["handle"]), data["status"], data["started"]
        )


@dataclass(repr=False)
class LocalClusterState:
    cluster: Cluster
    workdir: str  # the service's: logs
    rundir: str = ""  # the processes': working directory and credentials ("" = workdir)
    host: str = LEGACY_HOST  # the loopback host this cluster's processes bind to
    identity: Identity | None = None  # None: runs as the service's own user
    scheduler: ProcessHandle | None = None
    workers: dict[str, WorkerProc] = field(default_factory=dict)
    # directories of pre-started processes it claimed, besides workdir (workers' hold a
    # copy of its credentials)
    claimed_dirs: list[str] = field(default_factory=list)
    claimed_scheduler: bool = False  # its scheduler is a pre-started one (not persisted)
    next_worker: int = 0
    last_heartbeat: float = 0.0
    worker_failures: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rundir = self.rundir or self.workdir

    def __repr__(self) -> str:
        # never the Cluster's: it carries the token and the TLS key
        return (
            f"<LocalClusterState {self.cluster.name} {self.cluster.status.name} host={self.host}>"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "workdir": self.workdir,
            "rundir": self.rundir,
            "host": self.host,
            "identity": self.identity.to_dict() if self.identity else None,
            "scheduler": self.scheduler.to_dict() if self.scheduler else None,
            "workers": [w.to_dict() for w in self.workers.values()],
            "claimed_dirs": list(self.claimed_dirs),
            "next_worker": self.next_worker,
            "last_heartbeat": self.last_heartbeat,
            "worker_failures": self.worker_failures,
            "owner_groups": sorted(self.cluster.owner_groups),
        }

    @classmethod
    def from_dict(cls, cluster: Cluster, data: dict[str, Any]) -> LocalClusterState:
        state = cls(
            cluster=cluster,
            workdir=data["workdir"],
            rundir=data.get("rundir", ""),
            host=data.get("host", LEGACY_HOST),
            identity=Identity.from_dict(data.get("identity")),
        )
        state.scheduler = (
            ProcessHandle.from_dict(data["scheduler"]) if data.get("scheduler") else None
        )
        state.workers = {w["name"]: WorkerProc.from_dict(w) for w in data.get("workers", [])}
        state.claimed_dirs = list(data.get("claimed_dirs", []))
        state.next_worker = data.get("next_worker", 0)
        state.last_heartbeat = data.get("last_heartbeat", 0.0)
        state.worker_failures = data.get("worker_failures", 0)
        cluster.owner_groups = frozenset(data.get("owner_groups", ()))
        return state

    def directories(self) -> list[str]:
        """Every directory this cluster's processes ran in."""
        return [self.workdir, *self.claimed_dirs]

    def new_worker_name(self) -> str:
        self.next_worker += 1
        return f"worker-{self.next_worker}"

    def live_workers(self) -> list[WorkerProc]:
        return [w for w in self.workers.values() if w.status != CLOSING]

    def own(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
