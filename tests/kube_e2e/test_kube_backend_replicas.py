"""Two kube backends (two api replicas) on one emulator, no controller: what one replica's
cache has not seen yet must still be found, and quotas must hold across both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from jhub_gateway.hub_service.backends.base import GatewayContext
from jhub_gateway.hub_service.backends.kube.backend import KubeBackend
from jhub_gateway.hub_service.backends.kube.config import KubeClusterConfig
from jhub_gateway.hub_service.backends.kube.ledger import ledger_name
from jhub_gateway.hub_service.quotas import UserQuotas
from jhub_gateway.kube.client import CONFIGMAPS, DASKCLUSTERS, KubeClient
from jhub_gateway.models import Cluster, User
from tests.controller.kubeenv import ensure_namespace, install_crds
from tests.kube.apiserver import launch
from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "replicas"


class Replicas:
    def __init__(self, a: KubeBackend, b: KubeBackend, client: KubeClient) -> None:
        self.a, self.b, self.client = a, b, client


async def _backend(kubeconfig: Path, workdir: Path) -> KubeBackend:
    backend = KubeBackend(kubeconfig=str(kubeconfig), namespace=NS, instance="rep")
    backend.quotas = UserQuotas(max_workers=6)
    await backend.setup(GatewayContext("127.0.0.1:1", "", "", str(workdir), "/", None))
    return backend


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def replicas(tmp_path_factory) -> AsyncIterator[Replicas]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("replicas")
    cluster = await launch(workdir, kubelet=False)
    client = await KubeClient.connect(cluster.kubeconfig)
    backends: list[KubeBackend] = []
    try:
        await install_crds(client)
        await ensure_namespace(client, NS)
        for _ in range(2):
            backends.append(await _backend(cluster.kubeconfig, workdir))
        yield Replicas(backends[0], backends[1], client)
    finally:
        for backend in backends:
            await backend.cleanup()
        await client.close()
        await cluster.stop()


async def _create(backend: KubeBackend, user: str) -> Cluster:
    config = KubeClusterConfig(parent=backend, namespace=NS, worker_cores=1)
    return await backend.start_cluster(User(user), {}, config)


async def test_a_cluster_created_on_one_replica_is_found_before_the_other_saw_it(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    assert b.clusters_informer is not None and b.lookup is not None
    await b.clusters_informer.stop()  # b's cache now lags for as long as we like
    try:
        cluster = await _create(a, "carol")
        assert b.get_cluster(cluster.name) is None  # the miss this test is about
        await b.ensure_known(cluster.name)
        found = b.get_cluster(cluster.name)
        assert found is not None and found.username == "carol"
        gets = b.lookup.gets
        await b.ensure_known(cluster.name)  # known now: no second GET
        assert b.lookup.gets == gets
    finally:
        b.clusters_informer.start()
        await b.clusters_informer.synced()


async def test_unknown_and_foreign_names_stay_unknown_and_are_not_asked_for_twice(
    replicas: Replicas,
) -> None:
    b = replicas.b
    assert b.lookup is not None
    before = b.lookup.gets
    await asyncio.gather(*(b.ensure_known(f"{NS}.0123456789abcdef") for _ in range(5)))
    assert b.get_cluster(f"{NS}.0123456789abcdef") is None
    assert b.lookup.gets == before + 1  # one GET, then the remembered miss
    foreign = {
        "apiVersion": "jhubgateway.dask.org/v1alpha1",
        "kind": "DaskCluster",
        "metadata": {"name": "foreign1", "labels": {"gateway.dask.org/instance": "other"}},
        "spec": {"username": "mallory"},
    }
    await replicas.client.create(DASKCLUSTERS, foreign, NS)
    await b.ensure_known(f"{NS}.foreign1")
    assert b.get_cluster(f"{NS}.foreign1") is None  # another instance's: never served
    await b.ensure_known("not-a-public-name")  # no namespace: not even asked
    assert b.lookup.gets == before + 2


async def test_a_deleted_cluster_is_not_brought_back_by_a_late_get(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    cluster = await _create(a, "dave")
    await until(lambda: b.get_cluster(cluster.name) is not None, what="b to see the cluster")
    ns, name = cluster.name.split(".", 1)
    await replicas.client.delete(DASKCLUSTERS, name, ns)
    await until(lambda: b.get_cluster(cluster.name) is None, what="b to see the delete")
    await b.ensure_known(cluster.name)
    assert b.get_cluster(cluster.name) is None


async def test_two_replicas_scaling_one_users_clusters_at_once_stay_within_the_quota(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    owner = User("erin")
    c1, c2 = await _create(a, "erin"), await _create(b, "erin")
    # both caches know both clusters: the race is only in the writes
    await until(lambda: all(r.get_cluster(c.name) for r in (a, b) for c in (c1, c2)), what="caches")
    for wanted in (4, 5, 6):
        granted = await asyncio.gather(
            a.reserve_workers(owner, c1, wanted), b.reserve_workers(owner, c2, wanted)
        )
        assert sum(granted) <= 6, granted
        assert max(granted) == wanted or sum(granted) == 6, granted
        # scale both back down through their own replica; that frees the room again
        assert await a.reserve_workers(owner, c1, 0) == 0
        assert await b.reserve_workers(owner, c2, 0) == 0
    stored = await replicas.client.get(CONFIGMAPS, ledger_name("rep", "erin"), NS)
    entries = json.loads(stored["data"]["reservations"])
    assert {e["workers"] for e in entries.values()} == {0}
    # one replica scales up; the other, whose cache shows 0 workers, must count them
    assert await a.reserve_workers(owner, c1, 5) == 5
    assert await b.reserve_workers(owner, c2, 5) == 1
    # asking again for what is already reserved writes nothing
    version = (await replicas.client.get(CONFIGMAPS, ledger_name("rep", "erin"), NS))["metadata"][
        "resourceVersion"
    ]
    assert await a.reserve_workers(owner, c1, 5) == 5
    again = await replicas.client.get(CONFIGMAPS, ledger_name("rep", "erin"), NS)
    assert again["metadata"]["resourceVersion"] == version


async def test_without_a_worker_quota_scaling_writes_no_ledger(replicas: Replicas) -> None:
    a = replicas.a
    cluster = await _create(a, "frank")
    saved = a.quotas
    a.quotas = UserQuotas()
    try:
        assert await a.reserve_workers(User("frank"), cluster, 50) == 50
    finally:
        a.quotas = saved
    cms, _ = await replicas.client.list(CONFIGMAPS, NS)
    assert ledger_name("rep", "frank") not in {c["metadata"]["name"] for c in cms}
