"""The Kubernetes controller on the API emulator: API cost per cluster lifecycle, and scale.

Two parts, one emulator each, the controller always a real ``jhub-gateway-controller``
process (so its CPU time and RSS are its own):

1. **Lifecycle** with the process kubelet (real dask processes): create a
   DaskCluster, wait until ``Running``, scale to ``--workers`` through the
   scheduler (as the service does: /api/comm -> heartbeat -> ``spec.replicas``),
   stop, delete. Requests are counted *at the emulator*, by User-Agent, so only
   the controller's own calls are counted (not the kubelet's nor this script's).
2. **Many clusters** with a KWOK-like simulated kubelet (pods become Running
   and Ready with an IP at once, run no process): ``--clusters`` DaskClusters
   of 2 workers created at once; time until every one is Running with 2 ready
   workers, controller writes per cluster, controller CPU seconds and RSS.

Run: ``.venv/bin/python benchmarks/bench_kube_controller.py [--clusters 500]``.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jhub_gateway.kube.client import DASKCLUSTERS, PODS, KubeClient, KubeError  # noqa: E402
from jhub_gateway.kube.informer import Informer  # noqa: E402
from tests.controller.kubeenv import (  # noqa: E402
    ControllerProcess,
    HeartbeatSink,
    daskcluster,
    ensure_namespace,
    install_crds,
    secret_files,
)
from tests.kube.apiserver import Emulator  # noqa: E402

NS = "bench"
CONTROLLER_UA = "jhub-gateway-controller"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class CountingEmulator:
    """The emulator with a counter of requests per (User-Agent prefix, kind of request)."""

    def __init__(self, workdir: Path, *, rbac: bool = True) -> None:
        self.emulator = Emulator(workdir / "work", rbac=rbac)
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.kubeconfig = workdir / "kubeconfig"
        handle = self.emulator.router.handle

        async def counting(request: Any) -> Any:
            agent = request.headers.get("User-Agent", "")
            who = CONTROLLER_UA if agent.startswith(CONTROLLER_UA) else "other"
            if request.method == "GET":
                kind = "watch" if request.query.get("watch") in ("true", "1") else "read"
            else:
                kind = "write"
            self.counts[(who, kind)] += 1
            self.counts[(who, f"{request.method} {_kind_of(request.path)}")] += 1
            return await handle(request)

        self.emulator.router.handle = counting  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.emulator.start()
        self.emulator.write_kubeconfig(self.kubeconfig)

    def controller(self) -> dict[str, int]:
        return {k: v for (who, k), v in self.counts.items() if who == CONTROLLER_UA}

    async def stop(self) -> None:
        await self.emulator.stop()


def _kind_of(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :]
    else:
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if not rest:
        return "?"
    return rest[0] + ("/" + rest[2] if len(rest) > 2 else "")


class SimulatedKubelet:
    """KWOK-like: every new pod turns Running and Ready with an IP; deleted pods vanish."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.informer = Informer(client, PODS, namespace, on_change=self._on_event)
        self._ips = itertools.count(1)
        self._done: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def _on_event(self, etype: str, pod: dict[str, Any]) -> None:
        if etype != "DELETED":
            self.queue.put_nowait((etype, pod))

    async def start(self) -> None:
        self.informer.start()
        await self.informer.synced()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(8)]

    async def _work(self) -> None:
        while True:
            _, pod = await self.queue.get()
            meta = pod["metadata"]
            name, ns = meta["name"], meta["namespace"]
            try:
                if meta.get("deletionTimestamp"):
                    await self.client.delete(PODS, name, ns, grace_period_seconds=0)
                elif name not in self._done and (pod.get("status") or {}).get("phase") != "Running":
                    self._done.add(name)
                    n = next(self._ips)
                    ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
                    status = {
                        "phase": "Running",
                        "podIP": ip,
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [
                            {
                                "name": "dask",
                                "ready": True,
                                "restartCount": 0,
                                "state": {"running": {}},
                            }  # fmt: skip
                        ],
                    }
                    await self.client.patch_status(PODS, name, {"status": status}, ns)
            except KubeError:
                pass  # deleted meanwhile

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.informer.stop()


async def poll(check: Callable[[], Awaitable[Any]], timeout: float, what: str,
               period: float = 0.1) -> Any:  # fmt: skip
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = await check()
        if result:
            return result
        await asyncio.sleep(period)
    raise TimeoutError(f"timed out waiting for {what}")


def usage(proc: psutil.Process) -> tuple[float, int]:
    times = proc.cpu_times()
    return times.user + times.system, proc.memory_info().rss


# -- part 1: lifecycles on the process kubelet ---------------------------------------------


async def lifecycles(root: Path, runs: int, workers: int) -> dict[str, Any]:
    from tests.kube.kubelet import start_kubelet

    emu = CountingEmulator(root)
    await emu.start()
    kubelet = await start_kubelet(emu.kubeconfig, emu.emulator.workdir)
    client = await KubeClient.connect(emu.kubeconfig)
    sink = HeartbeatSink(client)
    controller: ControllerProcess | None = None
    results: dict[str, list[float]] = collections.defaultdict(list)
    try:
        await install_crds(client)
        await ensure_namespace(client, NS)
        await sink.start()
        controller = ControllerProcess(root, emu.kubeconfig, NS, sink.api_url,
                                       leader_election=False)  # fmt: skip
        await controller.start()
        await controller.wait_ready()
        assert controller.proc is not None
        proc = psutil.Process(controller.proc.pid)
        for run in range(runs):
            name = f"life{run}"
            before = emu.controller()
            t0 = time.monotonic()
            await client.create(DASKCLUSTERS, daskcluster(name), NS)

            async def status(name: str = name) -> dict[str, Any]:
                return (await client.get(DASKCLUSTERS, name, NS)).get("status") or {}

            st = await poll(lambda: _phase(status, "Running"), 60, "Running")
            results["start s"].append(time.monotonic() - t0)
            secret = await secret_files(client, NS, name, root / name)
            t1 = time.monotonic()
            await _scale(st["apiAddress"], secret["api-token"], workers)
            await poll(lambda: _replicas(status, workers), 60, f"{workers} workers")
            results[f"scale({workers}) s"].append(time.monotonic() - t1)
            await client.patch(DASKCLUSTERS, name, {"spec": {"active": False}}, NS)
            await poll(lambda: _phase(status, "Stopped"), 60, "Stopped")
            await client.delete(DASKCLUSTERS, name, NS)
            await poll(lambda: _gone(client, name), 60, "DaskCluster deleted")  # noqa: B023
            after = emu.controller()
            for key in ("write", "read", "watch"):
                results[f"{key}s"].append(after.get(key, 0) - before.get(key, 0))
            if run == 0:
                detail = {k: after.get(k, 0) - before.get(k, 0) for k in after if " " in k}
                results["_detail"] = [0]
                print("controller requests of lifecycle 1:",
                      {k: v for k, v in sorted(detail.items()) if v})  # fmt: skip
        cpu, rss = usage(proc)
        return {k: statistics.median(v) for k, v in results.items() if not k.startswith("_")} | {
            "controller RSS MiB": rss / 2**20,
            "controller CPU s": cpu,
        }
    finally:
        if controller is not None:
            await controller.kill()
        await sink.stop()
        await client.close()
        await kubelet.stop()
        await emu.stop()


async def _phase(status: Callable[[], Awaitable[dict[str, Any]]], phase: str) -> Any:
    st = await status()
    if st.get("phase") == "Failed":
        raise RuntimeError(f"cluster failed: {st.get('reason')}: {st.get('message')}")
    return st if st.get("phase") == phase else None


async def _replicas(status: Callable[[], Awaitable[dict[str, Any]]], n: int) -> bool:
    return (await status()).get("replicas") == n


async def _gone(client: KubeClient, name: str) -> bool:
    try:
        await client.get(DASKCLUSTERS, name, NS)
    except KubeError:
        return True
    return False


async def _scale(api_address: str, token: str, count: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api_address}/api/comm", json={"op": "scale", "count": count},
                                headers={"Authorization": f"token {token}"}) as resp:  # fmt: skip
            resp.raise_for_status()


# -- part 2: many clusters on simulated pods ------------------------------------------------


async def many(root: Path, clusters: int, rate: float, burst: int) -> dict[str, Any]:
    emu = CountingEmulator(root)
    await emu.start()
    client = await KubeClient.connect(emu.kubeconfig)
    client.limiter.rate, client.limiter.burst = 10_000.0, 10_000
    sim = SimulatedKubelet(client, NS)
    controller: ControllerProcess | None = None
    try:
        await install_crds(client)
        await ensure_namespace(client, NS)
        await sim.start()
        controller = ControllerProcess(
            root, emu.kubeconfig, NS, "http://127.0.0.1:1/api", name=f"many-{rate:g}",
            leader_election=False, parallelism=20, k8s_api_rate_limit=rate,
            k8s_api_rate_limit_burst=burst,
        )  # fmt: skip
        await controller.start()
        await controller.wait_ready()
        assert controller.proc is not None
        proc = psutil.Process(controller.proc.pid)
        cpu0, _ = usage(proc)
        before = emu.controller()
        t0 = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with sem:
                await client.create(DASKCLUSTERS, daskcluster(f"sim{i:04d}", replicas=2), NS)

        await asyncio.gather(*(create(i) for i in range(clusters)))
        created = time.monotonic() - t0

        async def converged() -> bool:
            items, _ = await client.list(DASKCLUSTERS, NS)
            done = sum(
                1 for c in items
                if (c.get("status") or {}).get("phase") == "Running"
                and (c.get("status") or {}).get("replicas") == 2
            )  # fmt: skip
            return done == clusters

        await poll(converged, 600, "all clusters Running with 2 workers", period=0.5)
        elapsed = time.monotonic() - t0
        cpu1, rss = usage(proc)
        after = emu.controller()
        pods, _ = await client.list(PODS, NS)
        writes = after.get("write", 0) - before.get("write", 0)
        return {
            "clusters": clusters,
            "rate limit": f"{rate:g}/{burst}",
            "creates issued s": created,
            "all Running s": elapsed,
            "pods": len(pods),
            "writes/cluster": writes / clusters,
            "status writes/cluster": after.get("PATCH daskclusters/status", 0) / clusters,
            "controller CPU s": cpu1 - cpu0,
            "controller RSS MiB": rss / 2**20,
        }
    finally:
        if controller is not None:
            await controller.kill()
        await sim.stop()
        await client.close()
        await emu.stop()


def table(title: str, row: dict[str, Any]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in row)
    for key, value in row.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="lifecycles on the process kubelet")
    parser.add_argument("--workers", type=int, default=4, help="workers per lifecycle")
    parser.add_argument("--clusters", type=int, default=500, help="simulated clusters")
    parser.add_argument("--rates", default="50/100,500/1000",
                        help="controller API rate/burst pairs for the simulated run")  # fmt: skip
    parser.add_argument("--skip-lifecycle", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_lifecycle:
            (root / "life").mkdir()
            row = await lifecycles(root / "life", args.runs, args.workers)
            table(f"lifecycle (process kubelet, median of {args.runs}): "
                  f"create -> Running -> {args.workers} workers -> stop -> delete", row)  # fmt: skip
        for i, pair in enumerate(args.rates.split(",")):
            rate, burst = pair.split("/")
            (root / f"many{i}").mkdir()
            row = await many(root / f"many{i}", args.clusters, float(rate), int(burst))
            table(f"{args.clusters} clusters x 2 workers (simulated pods)", row)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
