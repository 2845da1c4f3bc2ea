"""KubeClient and Informer against the Kubernetes API emulator (ConfigMaps as the resource)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from jhub_gateway.kube.client import (
    CONFIGMAPS,
    NAMESPACES,
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    KubeClient,
    NotFound,
    Resource,
    Unavailable,
)
from jhub_gateway.kube.informer import Informer, key_of
from jhub_gateway.kube.ratelimit import RateLimiter
from tests.kube.apiserver import KubeCluster, write_kubeconfig

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

_ns_ids = itertools.count()


@pytest_asyncio.fixture(loop_scope="module")
async def ns(client: KubeClient) -> str:
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"t{next(_ns_ids)}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __call__(self, etype: str, obj: dict[str, Any]) -> None:
        self.events.append((etype, key_of(obj)[1]))


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    informer.start()
    try:
        await asyncio.wait_for(informer.synced(), 10)
        yield informer
    finally:
        await informer.stop()


# -- lifecycle (first: it counts the emulator's open watches) -----------------


async def test_stop_leaves_no_task_and_no_watch(kube: KubeCluster, client: KubeClient) -> None:
    store = kube.emulator.store
    # Watches of informers stopped by earlier tests linger server-side until the
    # emulator next writes to them (<= 5 s); this test comes first to avoid that.
    await until(lambda: store.watcher_count() == 0, "no watches from earlier tests")
    before = 0
    informer = Informer(client, CONFIGMAPS, None)
    async with running(informer):
        await until(lambda: store.watcher_count() == before + 1, "the watch to open")
        assert informer.running
    assert not informer.running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("informer ")]
    await until(lambda: store.watcher_count() == before, "the watch to close")
    await informer.stop()  # idempotent


# -- KubeClient ------------------------------------------------------------------


async def test_client_verbs_and_typed_errors(client: KubeClient, ns: str) -> None:
    created = await client.create(CONFIGMAPS, configmap("a", colour="red"), ns)
    assert created["metadata"]["namespace"] == ns
    with pytest.raises(AlreadyExists):
        await client.create(CONFIGMAPS, configmap("a"), ns)

    patched = await client.patch(CONFIGMAPS, "a", {"data": {"size": "2"}}, ns)
    assert patched["data"] == {"colour": "red", "size": "2"}
    patched = await client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/colour"}], ns, patch_type="json"
    )
    assert patched["data"] == {"size": "2"}

    stale = dict(created)  # carries the creation resourceVersion
    with pytest.raises(Conflict):
        await client.replace(CONFIGMAPS, "a", stale, ns)

    items, version = await client.list(CONFIGMAPS, ns)
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in items] == [
        ("ConfigMap", "v1", "a")
    ]
    assert int(version) >= int(patched["metadata"]["resourceVersion"])

    await client.delete(CONFIGMAPS, "a", ns)
    with pytest.raises(NotFound):
        await client.get(CONFIGMAPS, "a", ns)
    with pytest.raises(NotFound):
        await client.delete(CONFIGMAPS, "a", ns)
    with pytest.raises(Invalid):
        await client.create(CONFIGMAPS, configmap("Not_A_Name"), ns)


async def test_watch_streams_events_and_raises_gone_when_compacted(
    kube: KubeCluster, client: KubeClient, ns: str
) -> None:
    _, version = await client.list(CONFIGMAPS, ns)
    await client.create(CONFIGMAPS, configmap("w"), ns)
    await client.delete(CONFIGMAPS, "w", ns)
    seen = []
    async with contextlib.aclosing(
        client.watch(CONFIGMAPS, ns, resource_version=version, timeout_seconds=1)
    ) as events:
        async for etype, obj in events:
            seen.append((etype, obj["metadata"].get("name")))
    assert [e for e in seen if e[0] != "BOOKMARK"] == [("ADDED", "w"), ("DELETED", "w")]

    await client.create(NAMESPACES, {"metadata": {"name": f"{ns}-bump"}})  # move past version
    kube.emulator.store.compact()
    with pytest.raises(Gone):
        async with contextlib.aclosing(
            client.watch(CONFIGMAPS, ns, resource_version=version, timeout_seconds=1)
        ) as events:
            async for _ in events:
                pass


async def test_client_retries_429_after_retry_after(tmp_path: Path) -> None:
    """A real HTTP server that throttles the first two requests."""
    calls: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            return web.json_response(
                {"kind": "Status", "reason": "TooManyRequests", "message": "slow down"},
                status=429,
                headers={"Retry-After": "0.2"},
            )
        return web.json_response({"metadata": {"name": request.match_info["name"]}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    try:
        async with await KubeClient.connect(config, max_retries=3) as throttled:
            assert (await throttled.get(CONFIGMAPS, "x", "ns"))["metadata"]["name"] == "x"
            assert len(calls) == 3
            assert calls[2] - calls[0] >= 0.35  # two Retry-After waits honoured

            calls.clear()
            throttled.max_retries = 1
            with pytest.raises(Unavailable) as info:
                await throttled.get(CONFIGMAPS, "x", "ns")
            assert info.value.status == 429 and info.value.retry_after == pytest.approx(0.2)
    finally:
        await runner.cleanup()


async def test_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")  # discard port
    async with await KubeClient.connect(config) as dead:
        with pytest.raises(Unavailable):
            await dead.get(CONFIGMAPS, "x", "ns")


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(rate=1000, burst=1000)
        self.acquired = 0

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()


async def test_every_call_takes_a_rate_limit_token(kube: KubeCluster, ns: str) -> None:
    limiter = CountingLimiter()
    async with await KubeClient.connect(kube.kubeconfig, limiter=limiter) as limited:
        await limited.create(CONFIGMAPS, configmap("r"), ns)
        await limited.get(CONFIGMAPS, "r", ns)
        await limited.list(CONFIGMAPS, ns)
        async with contextlib.aclosing(
            limited.watch(CONFIGMAPS, ns, resource_version="", timeout_seconds=1)
        ) as events:
            async for _ in events:
                break
        await limited.delete(CONFIGMAPS, "r", ns)
    assert limiter.acquired == 5


# -- Informer -------------------------------------------------------------------


async def test_initial_sync_fills_cache_and_reports_added(client: KubeClient, ns: str) -> None:
    for name in ("a", "b", "c"):
        await client.create(CONFIGMAPS, configmap(name), ns)
    recorder = Recorder()
    async with running(Informer(client, CONFIGMAPS, ns, on_change=recorder)) as informer:
        assert informer.has_synced
        assert sorted(informer.cache) == [(ns, "a"), (ns, "b"), (ns, "c")]
        assert sorted(recorder.events) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]


async def test_changes_reach_cache_and_handlers(client: KubeClient, ns: str) -> None:
    recorder = Recorder()
    async with running(Informer(client, CONFIGMAPS, ns, on_change=recorder)) as informer:
        await client.create(CONFIGMAPS, configmap("x", v="1"), ns)
        await until(lambda: informer.get(ns, "x") is not None, "ADDED in cache")
        await client.patch(CONFIGMAPS, "x", {"data": {"v": "2"}}, ns)
        await until(lambda: (informer.get(ns, "x") or {}).get("data") == {"v": "2"}, "MODIFIED")
        await client.delete(CONFIGMAPS, "x", ns)
        await until(lambda: informer.get(ns, "x") is None, "DELETED from cache")
        assert recorder.events == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]


async def test_watch_resumes_after_server_timeout_without_relisting(
    client: KubeClient, ns: str
) -> None:
    informer = Informer(client, CONFIGMAPS, ns, watch_timeout=1)
    async with running(informer):
        await until(lambda: informer.watches >= 3, "two watch timeouts")
        await client.create(CONFIGMAPS, configmap("late"), ns)
        await until(lambda: informer.get(ns, "late") is not None, "event after re-watch")
        assert informer.relists == 1


class FallingBehindClient(KubeClient):
    """Answers the first list with a version that is compacted away before the watch."""

    kube: KubeCluster
    stale_lists = 1

    async def list(self, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
        items, version = await super().list(*args, **kwargs)
        if self.stale_lists:
            self.stale_lists -= 1
            await self.create(NAMESPACES, {"metadata": {"name": f"bump{next(_ns_ids)}"}})
            self.kube.emulator.store.compact()
        return items, version


async def test_relists_after_410_and_reports_what_changed(
    kube: KubeCluster, client: KubeClient, ns: str
) -> None:
    await client.create(CONFIGMAPS, configmap("keep"), ns)
    recorder = Recorder()
    behind = await FallingBehindClient.connect(kube.kubeconfig)
    assert isinstance(behind, FallingBehindClient)
    behind.kube = kube
    informer = Informer(behind, CONFIGMAPS, ns, on_change=recorder)
    async with behind, running(informer):
        await until(lambda: informer.relists >= 2, "relist after 410")
        assert informer.get(ns, "keep") is not None
        assert recorder.events == [("ADDED", "keep")]  # the relist found nothing new
        await behind.create(CONFIGMAPS, configmap("after"), ns)
        await until(lambda: informer.get(ns, "after") is not None, "events after relist")

    # While stopped, objects come and go; restarting relists and the diff against
    # the old cache is reported (a deletion during an outage is not lost).
    await client.delete(CONFIGMAPS, "keep", ns)
    await client.create(CONFIGMAPS, configmap("new"), ns)
    await client.patch(CONFIGMAPS, "after", {"data": {"v": "1"}}, ns)
    old_cache = informer.cache
    recorder.events.clear()
    informer.client = client
    async with running(informer):
        assert sorted(recorder.events) == [("ADDED", "new"), ("DELETED", "keep"),
                                           ("MODIFIED", "after")]  # fmt: skip
        assert informer.cache is not old_cache  # swapped, not edited in place
        assert sorted(informer.cache) == [(ns, "after"), (ns, "new")]
        assert (ns, "keep") in old_cache


async def test_label_selector_filters_and_tracks_objects_leaving_it(
    client: KubeClient, ns: str
) -> None:
    recorder = Recorder()
    informer = Informer(client, CONFIGMAPS, ns, label_selector="app=yes", on_change=recorder)
    await client.create(CONFIGMAPS, configmap("in", {"app": "yes"}), ns)
    await client.create(CONFIGMAPS, configmap("out", {"app": "no"}), ns)
    async with running(informer):
        assert list(informer.cache) == [(ns, "in")]
        await client.create(CONFIGMAPS, configmap("in2", {"app": "yes"}), ns)
        await client.create(CONFIGMAPS, configmap("out2"), ns)
        await client.patch(CONFIGMAPS, "in", {"metadata": {"labels": {"app": "no"}}}, ns)
        await until(lambda: sorted(informer.cache) == [(ns, "in2")], "selector applied")
        assert recorder.events == [("ADDED", "in"), ("ADDED", "in2"), ("DELETED", "in")]


async def test_failing_list_backs_off_instead_of_looping(client: KubeClient) -> None:
    missing = Resource("nothing.example.com", "v1", "ghosts")
    informer = Informer(client, missing, "default", backoff_base=0.2, backoff_max=5)
    informer.start()
    try:
        await until(lambda: informer.consecutive_failures >= 2, "two failed lists")
        await asyncio.sleep(1.0)  # measuring window: a tight loop would fail hundreds of times
        assert informer.consecutive_failures <= 5
        assert not informer.has_synced and informer.running
    finally:
        await informer.stop()


async def test_synced_raises_when_stopped_before_initial_sync(client: KubeClient) -> None:
    informer = Informer(client, Resource("nothing.example.com", "v1", "ghosts"), "default")
    with pytest.raises(RuntimeError):
        await informer.synced()
    informer.start()
    waiter = asyncio.create_task(informer.synced())
    await until(lambda: informer.consecutive_failures >= 1, "a failed list")
    await informer.stop()
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(waiter, 5)


async def test_handler_errors_do_not_stop_the_informer(client: KubeClient, ns: str) -> None:
    def broken(etype: str, obj: dict[str, Any]) -> None:
        raise ValueError("handler bug")

    recorder = Recorder()
    informer = Informer(client, CONFIGMAPS, ns, on_change=broken)
    informer.add_handler(recorder)
    async with running(informer):
        await client.create(CONFIGMAPS, configmap("h"), ns)
        await until(lambda: ("ADDED", "h") in recorder.events, "event past a broken handler")
