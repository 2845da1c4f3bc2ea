"""The service layer's locking and quota admission, with an in-memory backend.

The backend here only records what it is asked; the scheduler is a real TCP
server that accepts requests and never answers (a hung scheduler).
"""

from __future__ import annotations

import asyncio

import pytest

from jhub_gateway.hub_service.backends.base import Backend
from jhub_gateway.hub_service.cluster_config import ClusterConfig
from jhub_gateway.hub_service.clusters import ClusterService
from jhub_gateway.hub_service.errors import QuotaExceeded, Unauthorized
from jhub_gateway.hub_service.quotas import UserQuotas
from jhub_gateway.models import Cluster, ClusterStatus, User
from jhub_gateway.options import Options
from tests.polling import until

ALICE = User("alice")


class RecordingBackend(Backend):
    """Clusters in memory; start and heartbeat only record (and may be made slow)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.heartbeats: list[tuple[str, int]] = []
        self.start_gate: asyncio.Event | None = None

    async def start_cluster(self, user, options, config):
        if self.start_gate is not None:
            await self.start_gate.wait()
        cluster = Cluster(
            name=f"c{len(list(self.registry.all()))}",
            username=user.name,
            config=config.to_dict(),
            token="t" * 32,
        )
        self.registry.add(cluster)
        return cluster

    async def on_heartbeat(self, name, heartbeat):
        cluster = self.registry.get(name)
        cluster.target_workers = heartbeat["count"]
        self.heartbeats.append((name, heartbeat["count"]))

    async def stop_cluster(self, name, *, reason, message="", failed=False):
        self.registry.get(name).transition(ClusterStatus.STOPPED, reason, message)


def running(backend: RecordingBackend, name: str, api_address: str, **config) -> Cluster:
    cluster = Cluster(
        name=name,
        username="alice",
        status=ClusterStatus.RUNNING,
        config=ClusterConfig(**config).to_dict(),
        token=f"token-of-{name}-0123456789",
        api_address=api_address,
    )
    backend.registry.add(cluster)
    return cluster


@pytest.fixture
async def hung_scheduler():
    """A scheduler API that accepts connections and requests but never answers."""
    received = asyncio.Event()
    release = asyncio.Event()
    writers = []

    async def on_connect(reader, writer):
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        await release.wait()  # hold the request open until the test ends

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", received
    release.set()
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


def service(backend: Backend, **quotas) -> ClusterService:
    return ClusterService(backend, Options(), UserQuotas(**quotas))


async def test_a_hung_scheduler_does_not_hold_up_the_owners_other_clusters(hung_scheduler):
    url, received = hung_scheduler
    backend = RecordingBackend()
    clusters = service(backend, max_workers=10)
    hung = running(backend, "hung", url)
    healthy = running(backend, "healthy", "http://127.0.0.1:9")

    scale = asyncio.create_task(clusters.scale(ALICE, hung.name, 3))
    await asyncio.wait_for(received.wait(), 10)
    # the scale request now sits in the hung scheduler, and must not block these
    await asyncio.wait_for(clusters.heartbeat(healthy, {"count": 2}), 5)
    limits, usage = clusters.usage(ALICE)
    await asyncio.wait_for(clusters.create(ALICE, {}), 5)
    assert backend.heartbeats == [("healthy", 2)]
    assert usage.workers == 5  # 3 reserved by the pending scale + 2 from the heartbeat
    assert not scale.done()
    scale.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scale
    # the reservation ends with the request
    assert clusters.usage(ALICE)[1].workers == 2


async def test_a_pending_scale_up_counts_against_the_quota(hung_scheduler):
    url, received = hung_scheduler
    backend = RecordingBackend()
    clusters = service(backend, max_workers=4)
    hung = running(backend, "hung", url)
    other = running(backend, "other", url)
    scale = asyncio.create_task(clusters.scale(ALICE, hung.name, 3))
    await asyncio.wait_for(received.wait(), 10)
    # a heartbeat of the other cluster asking for 4 gets what is left: 1
    await clusters.heartbeat(other, {"count": 4})
    assert backend.heartbeats == [("other", 1)]
    scale.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scale


async def test_concurrent_creates_never_exceed_the_cluster_quota():
    backend = RecordingBackend()
    backend.start_gate = asyncio.Event()
    clusters = service(backend, max_clusters=2)
    creates = [asyncio.create_task(clusters.create(ALICE, {})) for _ in range(5)]

    # two are admitted and wait inside the backend; the other three must be refused
    await until(lambda: sum(t.done() for t in creates) == 3, 10, what="three refusals")
    backend.start_gate.set()
    results = await asyncio.gather(*creates, return_exceptions=True)
    assert sum(isinstance(r, Cluster) for r in results) == 2
    assert all(isinstance(r, (Cluster, QuotaExceeded)) for r in results)


async def test_scheduler_token_is_checked_in_the_service():
    backend = RecordingBackend()
    clusters = service(backend)
    cluster = running(backend, "c", "http://127.0.0.1:9")
    assert clusters.scheduler_of("c", cluster.token) is cluster
    assert clusters.scheduler_of("c", "wrong") is None
    assert clusters.scheduler_of("c", "t\u00e9" * 10) is None  # non-ASCII: a mismatch, not a crash
    assert clusters.scheduler_of("../etc", cluster.token) is None
    with pytest.raises(Unauthorized):
        clusters.authenticate_scheduler("c", None)


async def test_a_purged_cluster_leaves_no_lock_behind(hung_scheduler):
    url, received = hung_scheduler
    backend = RecordingBackend()
    clusters = service(backend, max_workers=10)
    hung = running(backend, "hung", url)
    scale = asyncio.create_task(clusters.scale(ALICE, hung.name, 3))
    await asyncio.wait_for(received.wait(), 10)
    assert hung.name in clusters._cluster_locks
    scale.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scale
    backend.registry.remove(hung.name)
    assert hung.name not in clusters._cluster_locks
