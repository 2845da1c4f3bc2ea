"""The reconciler without an emulator: a fake informer cache and a recording client.

Every phase's end state is asserted, and so is what must *not* happen: no
second create while the informer lags, no status write when nothing changed.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from jhub_gateway.controller.cache import ClusterCache
from jhub_gateway.controller.expectations import Expectations
from jhub_gateway.controller.manager import requeue_after_error
from jhub_gateway.controller.podstate import format_time, parse_time
from jhub_gateway.controller.reconcile import Reconciler
from jhub_gateway.controller.secrets import new_credentials
from jhub_gateway.controller.settings import ControllerSettings
from jhub_gateway.controller.workqueue import QueueEmpty, WorkQueue
from jhub_gateway.kube.client import Conflict, Gone, Resource, Unavailable

from .fakes import CREATED, RecordingClient, cluster, exited, pending, running, set_pod_status


def test_new_credentials_are_fresh_and_redacted() -> None:
    a = new_credentials("ns.c1")
    b = new_credentials("ns.c1")
    assert a.api_token != b.api_token
    assert len(a.api_token) == 64
    assert "BEGIN CERTIFICATE" in a.tls_cert
    assert "PRIVATE KEY" in a.tls_key
    assert a.api_token not in repr(a)
    assert "PRIVATE KEY" not in repr(a)


def test_condition_transition_time_moves_only_on_flip() -> None:
    from jhub_gateway.controller.status import set_condition, status_changed

    c1 = set_condition([], "Ready", False, "Starting", "m", "t1")
    c2 = set_condition(c1, "Ready", False, "Starting", "m2", "t2")
    assert c2[0]["lastTransitionTime"] == "t1"
    c3 = set_condition(c2, "Ready", True, "Running", "ok", "t3")
    assert c3 == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Running",
            "message": "ok",
            "lastTransitionTime": "t3",
        }
    ]
    assert not status_changed({"phase": "Running", "x": 1}, {"phase": "Running"})
    assert status_changed(None, {"phase": "Running"})


# -- the reconciler against a fake cache and a recording client ---------------------------


T0 = parse_time(CREATED) or 0.0
KEY = ("ns", "c1")
SETTINGS = ControllerSettings(
    instance="gw",
    api_url="http://api.gw:8000/api",
    dashboard_auth_url="http://api.gw:8000/api/v1/dashboard-auth",
    scheduler_start_timeout=30,
    worker_start_timeout=20,
    route_settle_time=0.0,  # see test_running_waits_until_new_routes_had_time_to_apply
)


class World:
    def __init__(self, **spec: object) -> None:
        self.now = T0 + 1
        self.cache = ClusterCache()
        self.client = RecordingClient(self.cache)
        self.expectations = Expectations(60, clock=lambda: self.now)
        self.reconciler = Reconciler(self.client, self.cache, SETTINGS,
                                     expectations=self.expectations, clock=lambda: self.now)  # fmt: skip
        self.cache.apply("DaskCluster", "ADDED", cluster(**spec))

    async def run(self) -> float | None:
        return await self.reconciler.reconcile(KEY)

    def sync(self) -> None:
        for kind, etype, obj in self.client.pending:
            self.expectations.observe(kind, etype, obj)
        self.client.sync()

    @property
    def status(self) -> dict:
        return self.cache.clusters[KEY].get("status") or {}

    def edit(self, **spec: object) -> None:
        obj = self.cache.clusters[KEY]
        meta = {**obj["metadata"], "generation": obj["metadata"]["generation"] + 1}
        self.cache.apply("DaskCluster", "MODIFIED",
                         {**obj, "metadata": meta, "spec": {**obj["spec"], **spec}})  # fmt: skip

    def workers(self) -> list[str]:
        return sorted(n for n in self.cache.children("Pod", KEY) if n.startswith("dask-worker-"))

    async def running_cluster(self, replicas: int = 0) -> None:
        await self.run()
        self.sync()
        set_pod_status(self.cache, "ns", "dask-scheduler-c1", running("10.0.0.5"))
        if replicas:
            self.edit(replicas=replicas)
        await self.run()
        self.sync()
        self.client.take()


async def test_running_waits_until_new_routes_had_time_to_apply() -> None:
    w = World()
    w.reconciler.settings = dataclasses.replace(SETTINGS, route_settle_time=0.3)
    await w.run()
    w.sync()
    set_pod_status(w.cache, "ns", "dask-scheduler-c1", running("10.0.0.5"))
    after = await w.reconciler.reconcile(KEY)  # ready at once (a warm pod): routes too new
    assert all(p.get("phase") != "Running" for p in w.client.status_patches)
    assert after is not None and after <= 0.3
    w.now += 0.3
    await w.reconciler.reconcile(KEY)
    assert w.client.status_patches[-1]["phase"] == "Running"


async def test_a_new_cluster_gets_its_children_once_even_with_a_slow_informer() -> None:
    w = World()
    await w.run()
    calls = w.client.take()
    assert [c[:2] for c in calls if c[0] == "create"] == [
        ("create", "secrets"),
        ("create", "middlewares"),
        ("create", "middlewares"),
        ("create", "middlewares"),
        ("create", "services"),
        ("create", "ingressroutetcps"),
        ("create", "ingressroutes"),
        ("create", "pods"),
    ]
    # A Pending cluster's status is progress: held back, to join a later write.
    assert [c for c in calls if c[0] == "status"] == []
    # The informer has delivered nothing yet: a second pass must create nothing again.
    await w.run()
    assert w.client.take() == []
    w.sync()
    w.now += SETTINGS.progress_status_delay
    await w.run()
    assert w.client.take() == [("status", "daskclusters", "c1")]  # no create once it has
    patch = w.client.status_patches[-1]
    assert patch["phase"] == "Pending" and patch["credentials"] == "dask-credentials-c1"
    assert patch["observedGeneration"] == 1
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {
        "Failed": "False", "Progressing": "True", "Ready": "False"
    }  # fmt: skip
    w.sync()
    await w.run()
    assert w.client.take() == []


async def test_ready_scheduler_makes_it_running_with_pod_ip_addresses() -> None:
    w = World()
    await w.running_cluster()
    s = w.status
    assert s["phase"] == "Running"
    assert s["schedulerAddress"] == "tls://10.0.0.5:8786"
    assert s["dashboardAddress"] == "http://10.0.0.5:8787"
    assert s["apiAddress"] == "http://10.0.0.5:8788"
    assert s["selector"].startswith("app.kubernetes.io/component=dask-worker,")
    assert {c["type"]: c["status"] for c in s["conditions"]}["Ready"] == "True"


async def test_workers_are_created_in_growing_batches_without_duplicates() -> None:
    w = World()
    await w.running_cluster()
    w.edit(replicas=5)
    await w.run()
    creates = [c for c in w.client.take() if c[0] == "create"]
    assert len(creates) == 5 and all(c[1] == "pods" for c in creates)
    body = w.client.bodies[-1]
    assert "tls://10.0.0.5:8786" in body["spec"]["containers"][0]["args"]
    await w.run()  # informer still behind
    assert [c for c in w.client.take() if c[0] == "create"] == []
    w.sync()
    await w.run()
    assert [c for c in w.client.take() if c[0] == "create"] == []
    assert len(w.workers()) == 5


async def test_scale_down_deletes_pending_pods_newest_first_and_never_running_ones() -> None:
    w = World()
    await w.running_cluster(replicas=3)
    names = w.workers()
    set_pod_status(w.cache, "ns", names[0], running("10.0.0.6"))
    w.edit(replicas=0)
    await w.run()
    deletes = [c[2] for c in w.client.take() if c[0] == "delete"]
    assert deletes == [names[2], names[1]]  # both pending; the running one stays
    await w.run()
    assert [c for c in w.client.take() if c[0] == "delete"] == []  # expectations


async def test_finished_worker_is_deleted_and_a_deleted_one_replaced() -> None:
    w = World()
    await w.running_cluster(replicas=2)
    a, b = w.workers()
    set_pod_status(w.cache, "ns", a, exited(0))  # retired by the scheduler
    w.edit(replicas=1)
    await w.run()
    assert ("delete", "pods", a) in w.client.take()
    w.cache.apply("Pod", "DELETED", w.cache.children("Pod", KEY)[b])  # someone deleted b
    await w.run()
    creates = [c for c in w.client.take() if c[0] == "create"]
    assert len(creates) == 1


async def test_inactive_cluster_stops_then_ends_stopped() -> None:
    w = World()
    await w.running_cluster(replicas=1)
    w.edit(active=False)
    await w.run()
    calls = w.client.take()
    assert calls[0][0] == "status" and w.client.status_patches[-1]["phase"] == "Stopping"
    assert calls[1] == ("deletecollection", "pods",
                        "gateway.dask.org/cluster=c1,gateway.dask.org/instance=gw")  # fmt: skip
    w.sync()
    await w.run()
    assert w.client.take() == []  # pods still terminating: no second delete, no write
    for name in list(w.cache.children("Pod", KEY)):
        w.cache.apply("Pod", "DELETED", w.cache.children("Pod", KEY)[name])
    await w.run()
    w.sync()
    assert w.status["phase"] == "Stopped"
    assert w.status["completionTime"]
    assert "schedulerAddress" not in w.status


async def test_scheduler_exit_fails_with_log_lines_before_the_pods_go() -> None:
    w = World()
    await w.running_cluster()
    w.client.logs["dask-scheduler-c1"] = "line 1\nKilledWorker: boom\n"
    set_pod_status(w.cache, "ns", "dask-scheduler-c1", exited(3))
    await w.run()
    calls = w.client.take()
    assert [c[0] for c in calls] == ["log", "status", "deletecollection"]
    w.sync()
    s = w.status
    assert s["phase"] == "Failed" and s["reason"] == "SchedulerExited"
    assert "code 3" in s["message"] and "KilledWorker: boom" in s["message"]
    failed = {c["type"]: c for c in s["conditions"]}["Failed"]
    assert failed["status"] == "True" and "boom" in failed["message"]
    await w.run()  # final: the pods are already being deleted, nothing else happens
    assert w.client.take() == []


@pytest.mark.parametrize(
    "status,reason",
    [
        (pending("Unschedulable", "0/3 nodes are available"), "Unschedulable"),
        (pending("ImagePullBackOff", "Back-off pulling image"), "ImagePullBackOff"),
        (pending("ErrImagePull", "not found"), "ErrImagePull"),
        (pending("CrashLoopBackOff", "back-off 10s"), "CrashLoopBackOff"),
        (pending(), "StartTimeout"),
    ],
)
async def test_scheduler_start_timeout_fails_with_the_pods_reason(status: dict, reason: str
                                                                  ) -> None:  # fmt: skip
    w = World()
    await w.run()
    w.sync()
    set_pod_status(w.cache, "ns", "dask-scheduler-c1", status)
    w.now = T0 + 10
    after = await w.run()
    assert after == pytest.approx(20, abs=0.1)  # woken at the deadline, not polled
    w.sync()
    assert w.status["phase"] == "Pending"
    w.now = T0 + 31
    await w.run()
    w.sync()
    assert w.status["phase"] == "Failed" and w.status["reason"] == reason


def _scheduler_created_at(w: World, when: float) -> None:
    """Give the cached scheduler pod a creationTimestamp (the fake API stamps CREATED)."""
    pod = w.cache.children("Pod", KEY)["dask-scheduler-c1"]
    meta = {**pod["metadata"], "creationTimestamp": format_time(when)}
    w.cache.apply("Pod", "MODIFIED", {**pod, "metadata": meta})


async def test_the_scheduler_start_timeout_counts_from_its_pod_not_the_queue() -> None:
    """A burst can hold a cluster in the rate-limited queue past its start timeout;
    that wait is the controller's, so the scheduler's clock starts with its pod."""
    w = World()
    w.now = T0 + 50  # first reconciled 50 s after creation; the timeout is 30 s
    await w.run()
    assert w.status.get("phase") != "Failed"  # created, the cache has not shown it yet
    w.sync()
    _scheduler_created_at(w, T0 + 50)
    set_pod_status(w.cache, "ns", "dask-scheduler-c1", pending())
    w.now = T0 + 70
    await w.run()
    w.sync()
    assert w.status["phase"] == "Pending"
    w.now = T0 + 81
    await w.run()
    w.sync()
    assert w.status["phase"] == "Failed" and w.status["reason"] == "StartTimeout"
    assert "30 s after its pod was created" in w.status["message"]


async def test_start_time_is_the_clusters_creation_not_the_first_status_write() -> None:
    w = World()
    w.now = T0 + 50  # queued for 50 s
    await w.run()
    w.sync()
    w.now += SETTINGS.progress_status_delay
    await w.run()
    w.sync()
    assert w.client.status_patches, "the Pending status was written"
    assert w.status["startTime"] == CREATED


async def test_a_scheduler_pod_replaced_again_and_again_cannot_restart_the_clock_forever() -> None:
    """Each new scheduler pod gets its own timeout (30 s), but the whole start is capped
    at start_timeout_cap_factor (3) timeouts from the DaskCluster's creation: 90 s."""
    w = World()
    for created in (T0 + 1, T0 + 30, T0 + 60):
        w.now = created
        await w.run()  # (re)creates the scheduler pod
        w.sync()
        _scheduler_created_at(w, created)
        set_pod_status(w.cache, "ns", "dask-scheduler-c1", pending())
        w.now = created + 25  # its own timeout is not over yet
        after = await w.run()
        w.sync()
        assert w.status["phase"] == "Pending"
        assert after is not None and after <= 30
        # deleted (evicted, or by hand): the controller makes a new one
        w.cache.apply("Pod", "DELETED", w.cache.children("Pod", KEY)["dask-scheduler-c1"])
    # A fourth pod, made at T0+85, would have until T0+115 without the cap.
    w.now = T0 + 85
    await w.run()
    w.sync()
    _scheduler_created_at(w, T0 + 85)
    set_pod_status(w.cache, "ns", "dask-scheduler-c1", pending())
    w.now = T0 + 89
    after = await w.run()
    w.sync()
    assert w.status["phase"] == "Pending"
    assert after == pytest.approx(1, abs=0.1)  # woken at the cap, not at the pod's T0+115
    w.now = T0 + 91
    await w.run()
    w.sync()
    assert w.status["phase"] == "Failed" and w.status["reason"] == "StartTimeout"
    assert "not running 90 s after the cluster's creation" in w.status["message"]
    assert w.status["startTime"] == CREATED


async def test_worker_start_timeout_fails_the_cluster() -> None:
    w = World()
    await w.running_cluster(replicas=1)
    (name,) = w.workers()
    set_pod_status(w.cache, "ns", name, pending("CrashLoopBackOff", "back-off"))
    w.now = T0 + 25
    await w.run()
    w.sync()
    assert w.status["phase"] == "Failed" and w.status["reason"] == "CrashLoopBackOff"
    assert name in w.status["message"]


async def test_refused_pod_fails_the_cluster_instead_of_retrying_forever() -> None:
    w = World()
    w.client.refuse.add("pods")
    await w.run()
    w.sync()
    assert w.status["phase"] == "Failed" and w.status["reason"] == "InvalidConfig"


async def test_hand_edited_invalid_cluster_is_reported_not_raised() -> None:
    w = World()
    obj = w.cache.clusters[KEY]
    spec = {k: v for k, v in obj["spec"].items() if k != "username"}
    w.cache.apply("DaskCluster", "MODIFIED", {**obj, "spec": spec})
    await w.run()
    w.sync()
    assert w.status["phase"] == "Failed" and w.status["reason"] == "InvalidSpec"
    failed = {c["type"]: c for c in w.status["conditions"]}["Failed"]
    assert failed["status"] == "True" and "username" in failed["message"]


async def test_deleted_cluster_is_left_to_the_garbage_collector() -> None:
    w = World()
    await w.run()
    w.cache.apply("DaskCluster", "DELETED", w.cache.clusters[KEY])
    w.client.take()
    assert await w.run() is None
    assert w.client.take() == []


# -- retries of API failures ---------------------------------------------------------------


@pytest.mark.parametrize(
    "error,delay",
    [
        (Conflict(409, "Conflict", "stale"), 0.2),
        (Unavailable(429, "TooManyRequests", "slow down", retry_after=7.0), 7.0),
        (Unavailable(503, "ServiceUnavailable", "", retry_after=None), 1.0),
        (Unavailable(0, "TimeoutError", ""), 1.0),
        (Gone(410, "Expired", ""), 1.0),
        (RuntimeError("a bug"), 1.0),
    ],
)
def test_failed_reconciles_are_retried_with_backoff(error: Exception, delay: float) -> None:
    now = [0.0]
    queue: WorkQueue[tuple[str, str]] = WorkQueue(backoff_base=1.0, backoff_max=30.0,
                                                   clock=lambda: now[0])  # fmt: skip
    queue.put(KEY)
    assert queue.get_nowait() == KEY
    assert requeue_after_error(queue, KEY, error) == delay
    queue.done(KEY)
    now[0] = delay - 0.01
    with pytest.raises(QueueEmpty):
        queue.get_nowait()
    now[0] = delay
    assert queue.get_nowait() == KEY
    queue.done(KEY)


def test_backoff_grows_per_key_up_to_the_maximum() -> None:
    queue: WorkQueue[tuple[str, str]] = WorkQueue(backoff_base=1.0, backoff_max=5.0,
                                                   clock=lambda: 0.0)  # fmt: skip
    delays = [requeue_after_error(queue, KEY, Unavailable(500, "x", "")) for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


class YieldingClient(RecordingClient):
    """Creates that take a while, as real API calls do: other reconciles run meanwhile."""

    async def create(self, resource: Resource, body: dict, namespace: str | None = None) -> dict:
        await asyncio.sleep(0.01)
        return await super().create(resource, body, namespace)


async def test_concurrent_first_clusters_of_a_namespace_create_its_middlewares_once() -> None:
    cache = ClusterCache()
    client = YieldingClient(cache)
    reconciler = Reconciler(client, cache, SETTINGS, clock=lambda: T0 + 1)
    names = [f"c{i}" for i in range(5)]
    for name in names:
        cache.apply("DaskCluster", "ADDED", cluster(name))
    await asyncio.gather(*(reconciler.reconcile(("ns", n)) for n in names))
    middlewares = [c for c in client.take() if c[:2] == ("create", "middlewares")]
    assert sorted(c[2] for c in middlewares) == [
        "gw-dashboard-auth",
        "gw-dashboard-drop-credentials",
        "gw-dashboard-strip-prefix",
    ]
