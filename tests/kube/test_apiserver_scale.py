"""Scale: 2,000 objects with 20 concurrent watchers (a measurement, printed)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import psutil
import pytest

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

OBJECTS, WATCHERS, NS = 2000, 20, "default"


async def _watch(session: aiohttp.ClientSession, url: str, rv: str, seen: list[int]) -> None:
    params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
              "timeoutSeconds": "120", "labelSelector": "scale=yes"}  # fmt: skip
    async with session.get(url, params=params) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if json.loads(line)["type"] == "ADDED":
                seen.append(1)
                if len(seen) == OBJECTS:
                    return


async def test_2000_objects_20_watchers(kube_emulator):
    url = f"{kube_emulator.url}/api/v1/namespaces/{NS}/configmaps"
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        seen: list[list[int]] = [[] for _ in range(WATCHERS)]
        watchers = [asyncio.create_task(_watch(session, url, rv, s)) for s in seen]
        sem = asyncio.Semaphore(32)

        async def create(n: int) -> None:
            body = {"metadata": {"name": f"scale-{n:04d}", "labels": {"scale": "yes"}},
                    "data": {"n": str(n), "pad": "x" * 200}}  # fmt: skip
            async with sem, session.post(url, json=body) as resp:
                assert resp.status == 201

        start = time.monotonic()
        await asyncio.gather(*(create(n) for n in range(OBJECTS)))
        create_s = time.monotonic() - start
        try:
            await asyncio.wait_for(asyncio.gather(*watchers), 120)
        finally:
            for task in watchers:
                task.cancel()
        fanout_s = time.monotonic() - start
        latencies = []
        for _ in range(5):
            t0 = time.monotonic()
            async with session.get(url, params={"labelSelector": "scale=yes"}) as resp:
                items = (await resp.json())["items"]
            latencies.append(time.monotonic() - t0)
            assert len(items) == OBJECTS
    rss_after = proc.memory_info().rss
    assert all(len(s) == OBJECTS for s in seen)
    print(
        f"\nscale: {OBJECTS} configmaps created in {create_s:.2f}s; {WATCHERS} watchers saw all "
        f"events after {fanout_s:.2f}s; list of {OBJECTS}: median "
        f"{sorted(latencies)[2] * 1000:.0f} ms (min {min(latencies) * 1000:.0f} ms); "
        f"process RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB "
        f"(emulator and client share the process)"
    )
