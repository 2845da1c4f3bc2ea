"""Which time limits a local cluster has passed (pure: state and clock in, decisions out)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from jhub_gateway.models import Cluster, ClusterStatus

from ...cluster_config import ClusterConfig
from .state import STARTING, WorkerProc


@dataclass(frozen=True)
class Stop:
    reason: str
    message: str
    failed: bool


def cluster_deadline(
    cluster: Cluster,
    config: ClusterConfig,
    *,
    now: float,
    last_heartbeat: float,
    heartbeat_timeout: float,
    scheduler_log_tail: Callable[[], str],
) -> Stop | None:
    """The stop an active cluster is due for, if any (the log tail is read only then)."""
    age = now - cluster.start_time / 1000
    if cluster.status == ClusterStatus.PENDING and age > config.scheduler_start_timeout:
        return Stop(
            "SchedulerStartTimeout",
            f"the scheduler did not report in within {config.scheduler_start_timeout:g} s; "
            f"last log lines:\n{scheduler_log_tail()}",
            failed=True,
        )
    if cluster.status == ClusterStatus.RUNNING and now - last_heartbeat > heartbeat_timeout:
        return Stop("HeartbeatTimeout", f"no heartbeat for {heartbeat_timeout:g} s", failed=True)
    if config.max_lifetime and age > config.max_lifetime:
        return Stop(
            "MaxLifetimeReached",
            f"clusters may run at most {config.max_lifetime:g} s",
            failed=False,
        )
    return None


def late_workers(
    workers: Iterable[WorkerProc], config: ClusterConfig, now: float
) -> list[WorkerProc]:
    """Workers still starting after ``worker_start_timeout``."""
    return [
        w for w in workers if w.status == STARTING and now - w.started > config.worker_start_timeout
    ]
