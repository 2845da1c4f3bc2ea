"""The warm pool and the reconciler's use of it, against a fake cache and a recording client.

What a refill creates, keeps and deletes (pods of another profile, claimed but
never relabelled ones, Secrets without their pod, everything when the size is
0); which profile it warms; and that a cluster whose claim succeeds gets no
cold pod and takes the relabelled warm pod as its scheduler.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

from jhub_gateway.controller.builders import ClusterSpec
from jhub_gateway.controller.builders.warm import (
    ANNOTATION_CLAIMED_AT,
    ANNOTATION_CLAIMED_BY,
    build_claim_patch,
    build_warm_pod,
    build_warm_secret,
    scheduler_profile,
)
from jhub_gateway.controller.cache import POD, ClusterCache
from jhub_gateway.controller.expectations import Expectations
from jhub_gateway.controller.podstate import format_time
from jhub_gateway.controller.reconcile import Reconciler
from jhub_gateway.controller.secrets import ClusterCredentials
from jhub_gateway.controller.warmpool import (
    CLAIM_BACKOFF,
    READY_TIMEOUT,
    WarmPool,
    WarmSettings,
)
from jhub_gateway.tls import new_keypair

from .fakes import RecordingClient, cluster, running
from .test_reconcile_unit import SETTINGS, T0

OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "gw-controller", "uid": "cm-uid"}


def pool(cache: ClusterCache, size: int = 1, **seed: Any) -> tuple[WarmPool, RecordingClient]:
    client = RecordingClient(cache)
    warm = WarmSettings(size=size, namespaces=("ns",), seed_config=seed, owner=OWNER,
                        owner_namespace="ns")  # fmt: skip
    return WarmPool(client, cache, SETTINGS, warm, clock=lambda: T0), client


def spec_of(obj: dict) -> ClusterSpec:
    return ClusterSpec.from_resource(obj, **SETTINGS.spec_settings())


def test_refill_creates_the_claim_secret_then_the_pod_owned_by_the_configmap() -> None:
    cache = ClusterCache()
    warm, client = pool(cache)
    asyncio.run(warm.refill("ns"))
    calls = client.take()
    assert [c[:2] for c in calls] == [("create", "secrets"), ("create", "pods")]
    assert calls[0][2] == calls[1][2]  # the Secret has the pod's name
    secret, pod = client.bodies
    assert pod["metadata"]["ownerReferences"] == [OWNER] == secret["metadata"]["ownerReferences"]
    client.sync()
    asyncio.run(warm.refill("ns"))
    assert client.take() == []  # full: level-based, nothing more


def test_a_pod_just_created_counts_before_the_cache_shows_it() -> None:
    cache = ClusterCache()
    warm, client = pool(cache)
    asyncio.run(warm.refill("ns"))
    client.take()
    asyncio.run(warm.refill("ns"))  # the informer has not delivered the pod yet
    assert client.take() == []


def test_garbage_is_deleted_and_replaced() -> None:
    cache = ClusterCache()
    warm, client = pool(cache, size=1)
    seed = warm.target("ns")
    assert seed is not None
    profile, spec = seed
    claimed = build_warm_pod(spec, name="dask-warm-claimed", profile=profile, owner=None)
    claimed["metadata"]["annotations"] = {
        ANNOTATION_CLAIMED_BY: "c9/uid",
        ANNOTATION_CLAIMED_AT: "x",
    }
    stale = build_warm_pod(spec, name="dask-warm-stale", profile="0" * 20, owner=None)
    orphan = build_warm_secret(spec, name="dask-warm-orphan", profile=profile, tls_cert="c",
                               tls_key="k", owner=None)  # fmt: skip
    for kind, obj in (("Pod", claimed), ("Pod", stale), ("Secret", orphan)):
        cache.apply(kind, "ADDED", obj)
    asyncio.run(warm.refill("ns"))
    calls = client.take()
    deleted = {(plural, name) for verb, plural, name in calls if verb == "delete"}
    assert deleted == {
        ("pods", "dask-warm-claimed"), ("secrets", "dask-warm-claimed"),
        ("pods", "dask-warm-stale"), ("secrets", "dask-warm-stale"),
        ("secrets", "dask-warm-orphan"),
    }  # fmt: skip
    assert [c[1] for c in calls if c[0] == "create"] == ["secrets", "pods"]


def test_size_zero_creates_none_claims_none_and_deletes_what_is_left() -> None:
    cache = ClusterCache()
    warm, client = pool(cache, size=0)
    spec = spec_of(cluster())
    left = build_warm_pod(spec, name="dask-warm-left", profile=scheduler_profile(spec), owner=None)
    cache.apply("Pod", "ADDED", left)
    asyncio.run(warm.refill("ns"))
    assert client.take() == [
        ("delete", "pods", "dask-warm-left"),
        ("delete", "secrets", "dask-warm-left"),
    ]
    creds = ClusterCredentials("c", "k", "t")
    assert asyncio.run(warm.claim(spec, creds)) is None


def test_the_profile_most_clusters_use_is_warmed_the_seed_first() -> None:
    cache = ClusterCache()
    warm, _ = pool(cache, schedulerMemory=2**30)
    seed = warm.target("ns")
    assert seed is not None and seed[1].scheduler_memory == 2**30
    theirs = [cluster(f"c{i}", config={"schedulerMemory": 3 * 2**30}) for i in range(2)]
    for obj in theirs:
        cache.apply("DaskCluster", "ADDED", obj)
    learned = warm.target("ns")
    assert learned is not None
    assert learned[0] == scheduler_profile(spec_of(theirs[0])) != seed[0]
    assert warm.target("elsewhere") is not None  # the seed, in any namespace


def test_no_ready_warm_pod_means_a_cold_start() -> None:
    cache = ClusterCache()
    warm, client = pool(cache)
    asyncio.run(warm.refill("ns"))
    client.sync()  # the warm pod exists but is not Ready yet
    client.take()
    assert asyncio.run(warm.claim(spec_of(cluster()), ClusterCredentials("c", "k", "t"))) is None
    assert client.take() == []


class ClaimingPool:
    """Stands in for a WarmPool whose claim of ``name`` succeeds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.specs: list[ClusterSpec] = []

    async def claim(self, spec: ClusterSpec, credentials: ClusterCredentials,
                    announce: Callable[[str], Awaitable[None]]) -> str:  # fmt: skip
        assert credentials.api_token  # the cluster's, minted just before
        self.specs.append(spec)
        await announce(self.name)
        return self.name


def test_a_claimed_warm_pod_becomes_the_scheduler_and_no_cold_pod_is_made() -> None:
    cache = ClusterCache()
    client = RecordingClient(cache)
    now = T0 + 1
    reconciler = Reconciler(client, cache, SETTINGS, expectations=Expectations(60),
                            clock=lambda: now, warm=ClaimingPool("dask-warm-x"))  # type: ignore[arg-type]  # fmt: skip
    obj = cluster()
    cache.apply("DaskCluster", "ADDED", obj)
    asyncio.run(reconciler.reconcile(("ns", "c1")))
    created = [
        name for verb, plural, name in client.take() if verb == "create" and plural == "pods"
    ]
    assert created == []
    # named in the status before the scheduler starts (its first heartbeat checks it)
    assert client.status_patches[0] == {"schedulerPod": "dask-warm-x"}
    client.sync()
    # the informer shows the relabelled pod: it is the cluster's scheduler, and ready
    spec = spec_of(obj)
    warm = build_warm_pod(spec, name="dask-warm-x", profile=scheduler_profile(spec), owner=None)
    patch = build_claim_patch(spec, warm)["metadata"]
    claimed = copy.deepcopy(warm)
    labels = {**warm["metadata"]["labels"], **patch["labels"]}
    claimed["metadata"].update(
        labels={k: v for k, v in labels.items() if v is not None},
        annotations={ANNOTATION_CLAIMED_AT: "2026-12-02T08:00:01Z"},
        ownerReferences=patch["ownerReferences"],
        creationTimestamp="2026-12-01T08:00:00Z",  # long before: the claim starts the clock
    )
    claimed["status"] = running("10.0.0.9")
    cache.apply("Pod", "ADDED", claimed)
    asyncio.run(reconciler.reconcile(("ns", "c1")))
    assert not [c for c in client.take() if c[0] == "create" and c[1] == "pods"]
    status = client.status_patches[-1]
    assert status["phase"] == "Running" and "schedulerPod" not in status  # written already
    assert status["schedulerAddress"] == "tls://10.0.0.9:8786"


def _deaf_warm_pod(cache: ClusterCache, spec: ClusterSpec, namespace: str) -> str:
    """A Ready warm pod (and its Secret) in ``namespace`` whose claim port answers nothing."""
    name = f"dask-warm-deaf-{namespace}"
    profile = scheduler_profile(spec)
    pod = build_warm_pod(spec, name=name, profile=profile, owner=None)
    pod["metadata"].update(namespace=namespace, resourceVersion="3",
                           creationTimestamp="2026-12-02T08:00:00Z")  # fmt: skip
    pod["status"] = running("127.0.0.254")
    cert, key = new_keypair(name)
    secret = build_warm_secret(spec, name=name, profile=profile, tls_cert=cert, tls_key=key,
                               owner=None)  # fmt: skip
    secret["metadata"]["namespace"] = namespace
    cache.apply("Pod", "ADDED", pod)
    cache.apply("Secret", "ADDED", secret)
    return name


def test_a_failed_claim_deletes_the_pod_and_pauses_claims() -> None:
    cache = ClusterCache()
    warm, client = pool(cache)
    spec = spec_of(cluster())
    deaf = _deaf_warm_pod(cache, spec, "ns")
    creds = ClusterCredentials("c", "k", "t")
    assert asyncio.run(warm.claim(spec, creds)) is None  # the reconciler makes a cold pod
    assert client.take() == [
        ("patch", "pods", deaf),  # the claim mark
        ("delete", "pods", deaf),
        ("delete", "secrets", deaf),
    ]
    assert asyncio.run(warm.claim(spec, creds)) is None
    assert client.take() == []  # paused: not one failure per cluster start


def test_a_warm_pod_never_ready_is_deleted_and_not_replaced_at_once() -> None:
    # unschedulable, an image that cannot be pulled, a probe that never passes: it must
    # not hold its resource requests (or the pool's place) for good
    cache = ClusterCache()
    now = [T0]
    client = RecordingClient(cache)
    warm = WarmPool(client, cache, SETTINGS, WarmSettings(size=1, namespaces=("ns",)),
                    clock=lambda: now[0])  # fmt: skip
    asyncio.run(warm.refill("ns"))
    client.take()
    client.sync()  # the pod exists, Pending
    now[0] = T0 + READY_TIMEOUT - 1
    asyncio.run(warm.refill("ns"))
    assert client.take() == []  # still within its time
    now[0] = T0 + READY_TIMEOUT + 1
    asyncio.run(warm.refill("ns"))
    calls = client.take()
    assert [c[:2] for c in calls] == [("delete", "pods"), ("delete", "secrets")]
    secret, pod = client.bodies
    cache.apply("Pod", "DELETED", pod)  # what the informers then deliver
    cache.apply("Secret", "DELETED", secret)
    now[0] += CLAIM_BACKOFF - 1
    asyncio.run(warm.refill("ns"))
    assert client.take() == []  # backing off: the next one would likely be stuck too
    now[0] += 2
    asyncio.run(warm.refill("ns"))
    assert [c[:2] for c in client.take()] == [("create", "secrets"), ("create", "pods")]


def test_watching_all_namespaces_warms_those_with_clusters_and_cleans_up_after() -> None:
    cache = ClusterCache()
    client = RecordingClient(cache)
    warm = WarmPool(client, cache, SETTINGS,
                    WarmSettings(size=1, namespaces=("ns",), follow_clusters=True),
                    clock=lambda: T0)  # fmt: skip
    asyncio.run(warm.refill_all())
    client.take()
    assert [b["metadata"]["namespace"] for b in client.bodies] == ["ns", "ns"]  # its own
    client.sync()
    theirs = cluster("c1", namespace="team-a")
    cache.apply("DaskCluster", "ADDED", theirs)
    assert warm.namespaces() == {"ns", "team-a"}
    asyncio.run(warm.refill_all())
    created = [b for b in client.bodies[2:] if b["kind"] == "Pod"]
    assert [b["metadata"]["namespace"] for b in created] == ["team-a"]
    assert "ownerReferences" not in created[0]["metadata"]  # none across namespaces
    client.take()
    client.sync()
    cache.apply("DaskCluster", "DELETED", theirs)
    asyncio.run(warm.refill_all())  # team-a has no cluster left: its warm pod goes
    deleted = [(c[1], c[2]) for c in client.take() if c[0] == "delete"]
    name = created[0]["metadata"]["name"]
    assert deleted == [("pods", name), ("secrets", name)]


def test_a_failed_claim_pauses_claims_in_its_namespace_only() -> None:
    # a NetworkPolicy in one user namespace must not turn warm pods off everywhere
    cache = ClusterCache()
    client = RecordingClient(cache)
    warm = WarmPool(client, cache, SETTINGS, WarmSettings(size=1, namespaces=("ns", "other")),
                    clock=lambda: T0)  # fmt: skip
    creds = ClusterCredentials("c", "k", "t")
    here, there = spec_of(cluster()), spec_of(cluster(namespace="other"))
    _deaf_warm_pod(cache, here, "ns")
    elsewhere = _deaf_warm_pod(cache, there, "other")
    assert asyncio.run(warm.claim(here, creds)) is None
    client.take()
    assert asyncio.run(warm.claim(there, creds)) is None
    assert ("patch", "pods", elsewhere) in client.take()  # tried: not paused by ns's failure


def test_a_warm_pod_that_was_ready_is_kept_while_it_recovers() -> None:
    cache = ClusterCache()
    now = [T0 + READY_TIMEOUT * 10]  # created long ago
    client = RecordingClient(cache)
    warm = WarmPool(client, cache, SETTINGS, WarmSettings(size=1, namespaces=("ns",)),
                    clock=lambda: now[0])  # fmt: skip
    asyncio.run(warm.refill("ns"))
    client.take()
    _, pod = client.bodies
    client.sync()
    status = running("10.0.0.7")
    for condition in status["conditions"]:
        if condition["type"] == "Ready":  # a probe failed a minute ago
            condition.update(status="False", lastTransitionTime=format_time(now[0] - 60))
    cached = cache.warm[POD][("ns", pod["metadata"]["name"])]
    cache.apply("Pod", "MODIFIED", {**cached, "status": status})
    asyncio.run(warm.refill("ns"))
    assert client.take() == []
    now[0] += READY_TIMEOUT
    asyncio.run(warm.refill("ns"))  # not Ready for longer than the timeout now
    assert [c[:2] for c in client.take()] == [("delete", "pods"), ("delete", "secrets")]


def test_a_refused_warm_pod_is_not_retried_at_every_event() -> None:
    # e.g. a ResourceQuota in the namespace: the API says no, and will again
    cache = ClusterCache()
    now = [T0]
    client = RecordingClient(cache)
    client.refuse.add("pods")
    warm = WarmPool(client, cache, SETTINGS, WarmSettings(size=1, namespaces=("ns",)),
                    clock=lambda: now[0])  # fmt: skip
    asyncio.run(warm.refill_all())
    assert [c[:2] for c in client.take()] == [("create", "secrets"), ("delete", "secrets")]
    now[0] += 1
    asyncio.run(warm.refill_all())
    assert not [c for c in client.take() if c[0] == "create"]
    now[0] += CLAIM_BACKOFF
    asyncio.run(warm.refill_all())
    assert ("create", "secrets") in [c[:2] for c in client.take()]  # tried again
