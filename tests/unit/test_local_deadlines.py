"""Time limits of local clusters, decided without processes or clocks."""

from __future__ import annotations

from jhub_gateway.hub_service.backends.local.deadlines import cluster_deadline, late_workers
from jhub_gateway.hub_service.backends.local.processes import ProcessHandle
from jhub_gateway.hub_service.backends.local.state import RUNNING, STARTING, WorkerProc
from jhub_gateway.hub_service.cluster_config import ClusterConfig
from jhub_gateway.models import Cluster, ClusterStatus

T0 = 1_000_000.0


def cluster(status: ClusterStatus) -> Cluster:
    c = Cluster(name="c", username="u", start_time=int(T0 * 1000))
    c.status = status
    return c


def decide(c, config, now, last_heartbeat=T0):
    return cluster_deadline(
        c,
        config,
        now=now,
        last_heartbeat=last_heartbeat,
        heartbeat_timeout=30,
        scheduler_log_tail=lambda: "Traceback: boom",
    )


def test_pending_past_start_timeout_fails_with_log_tail():
    config = ClusterConfig(scheduler_start_timeout=10)
    assert decide(cluster(ClusterStatus.PENDING), config, T0 + 9) is None
    stop = decide(cluster(ClusterStatus.PENDING), config, T0 + 11)
    assert stop.reason == "SchedulerStartTimeout" and stop.failed and "boom" in stop.message


def test_silent_running_cluster_fails():
    stop = decide(cluster(ClusterStatus.RUNNING), ClusterConfig(), T0 + 100, last_heartbeat=T0 + 60)
    assert stop.reason == "HeartbeatTimeout" and stop.failed
    assert (
        decide(cluster(ClusterStatus.RUNNING), ClusterConfig(), T0 + 100, last_heartbeat=T0 + 80)
        is None
    )


def test_max_lifetime_stops_without_failing():
    config = ClusterConfig(max_lifetime=50)
    stop = decide(cluster(ClusterStatus.RUNNING), config, T0 + 51, last_heartbeat=T0 + 50)
    assert stop.reason == "MaxLifetimeReached" and not stop.failed
    assert (
        decide(
            cluster(ClusterStatus.RUNNING), ClusterConfig(), T0 + 10**6, last_heartbeat=T0 + 10**6
        )
        is None
    )


def test_late_workers_are_only_the_starting_ones():
    handle = ProcessHandle(1, 0.0, "/dev/null")
    workers = [
        WorkerProc("a", handle, STARTING, T0),
        WorkerProc("b", handle, RUNNING, T0),
        WorkerProc("c", handle, STARTING, T0 + 50),
    ]
    late = late_workers(workers, ClusterConfig(worker_start_timeout=30), T0 + 60)
    assert [w.name for w in late] == ["a"]
