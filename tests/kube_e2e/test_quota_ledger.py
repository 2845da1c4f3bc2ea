"""The per-user quota ledger against the API emulator: optimistic concurrency, expiry."""

from __future__ import annotations

import asyncio
import json

import pytest

from jhub_gateway.hub_service.backends.kube.ledger import QuotaLedger, ledger_name
from jhub_gateway.hub_service.errors import QuotaExceeded
from jhub_gateway.hub_service.quotas import Limits
from jhub_gateway.kube.client import CONFIGMAPS, NAMESPACES, AlreadyExists, KubeClient
from jhub_gateway.models import Cluster, ClusterStatus, User

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "ledger"


async def client_for(kube_emulator) -> KubeClient:
    client = await KubeClient.connect(kube_emulator.kubeconfig)
    try:
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        )
    except AlreadyExists:
        pass  # created by an earlier test of this module
    return client


def ledger(client: KubeClient, clusters: dict[str, Cluster] | None = None, grace=60.0):
    known = clusters or {}
    return QuotaLedger(
        client,
        NS,
        "t",
        lookup=known.get,
        active_of=lambda user: [c for c in known.values() if c.status.is_active],
        grace=grace,
    )


async def test_concurrent_reservations_on_separate_replicas_admit_only_the_limit(
    kube_emulator,
) -> None:
    async with await client_for(kube_emulator) as client:
        # five "replicas", none of which has seen any cluster in its cache
        replicas = [ledger(client) for _ in range(5)]
        user = User("racer")
        results = await asyncio.gather(
            *(
                r.reserve(user, Limits(clusters=2), f"{NS}.c{i}", 1.0, 2**30)
                for i, r in enumerate(replicas)
            ),
            return_exceptions=True,
        )
        assert results.count(None) == 2, results
        assert all(isinstance(r, QuotaExceeded) for r in results if r is not None)
        stored = await client.get(CONFIGMAPS, ledger_name("t", "racer"), NS)
        assert len(json.loads(stored["data"]["reservations"])) == 2


async def test_cores_quota_counts_reservations_not_yet_in_the_cache(kube_emulator) -> None:
    async with await client_for(kube_emulator) as client:
        user = User("cores")
        await ledger(client).reserve(user, Limits(cores=3), f"{NS}.a", 2.0, 1)
        with pytest.raises(QuotaExceeded, match="core or memory"):
            await ledger(client).reserve(user, Limits(cores=3), f"{NS}.b", 2.0, 1)


async def test_stopped_clusters_and_lapsed_reservations_free_their_room(kube_emulator) -> None:
    async with await client_for(kube_emulator) as client:
        user = User("reuse")
        limits = Limits(clusters=1)
        await ledger(client).reserve(user, limits, f"{NS}.old", 1.0, 1)
        stopped = Cluster(name=f"{NS}.old", username="reuse", status=ClusterStatus.STOPPED)
        await ledger(client, {stopped.name: stopped}).reserve(user, limits, f"{NS}.new", 1.0, 1)
        # "new" never appeared in any cache: once its grace is over it no longer counts
        await ledger(client, grace=0.0).reserve(user, limits, f"{NS}.third", 1.0, 1)
        running = Cluster(name=f"{NS}.third", username="reuse", status=ClusterStatus.RUNNING)
        with pytest.raises(QuotaExceeded):
            await ledger(client, {running.name: running}, grace=0.0).reserve(
                user, limits, f"{NS}.fourth", 1.0, 1
            )


async def test_release_drops_a_failed_creates_reservation(kube_emulator) -> None:
    async with await client_for(kube_emulator) as client:
        user = User("oops")
        limits = Limits(clusters=1)
        await ledger(client).reserve(user, limits, f"{NS}.x", 1.0, 1)
        await ledger(client).release(user, f"{NS}.x")
        await ledger(client).reserve(user, limits, f"{NS}.y", 1.0, 1)
