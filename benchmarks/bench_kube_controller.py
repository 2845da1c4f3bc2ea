"""The Kubernetes controller on the API emulator: API cost per cluster lifecycle, and scale.

Two parts, one emulator each, the controller always a real ``jhub-gateway-controller``
process (so its CPU time and RSS are its own):

1. **Lifecycle** with the process kubelet (real dask processes): the lifecycle of
   :func:`benchmarks.kubebench.lifecycle` (create -> ``Running`` -> ``scale(--workers)``
   through the scheduler, as the service does -> stop -> delete), requests counted
   *at the emulator* by User-Agent, so only the controller's own calls are counted.
2. **Many clusters** with the kubelet's simulated pods (``simulated=True``: pods
   become Running and Ready with an IP at once and run no process, as with KWOK):
   ``--clusters`` DaskClusters of 2 workers created at once; time until every one is
   Running with 2 ready workers, controller writes per cluster, CPU seconds and RSS.

3. **Warm scheduler pods** (``--warm-only`` runs only this): the same cluster created
   ``--warm-runs`` times with a warm pod waiting (``warm_scheduler_pods=1``; each run
   waits until the pool has refilled) and with none (``0``, a cold pod each time):
   created -> ``Running``, and created -> usable (the first RPC over TLS to the
   scheduler address in the status answers, what ``new_cluster()`` and the client's
   connection add up to).

Run: ``.venv/bin/python benchmarks/bench_kube_controller.py [--clusters 500] [--warm-only]``.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.kubebench import (  # noqa: E402
    NS,
    CountingEmulator,
    EmulatorProcesses,
    Side,
    as_deployed,
    lifecycle,
    poll,
    usage,
)
from jhub_gateway.kube.client import DASKCLUSTERS, PODS, SECRETS, KubeClient  # noqa: E402
from tests.controller.kubeenv import (  # noqa: E402
    ControllerProcess,
    HeartbeatSink,
    daskcluster,
    ensure_namespace,
    install_crds,
)

WARM_SELECTOR = "app.kubernetes.io/component=dask-warm-scheduler"

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
        # cold starts, comparable with earlier runs and upstream's (part 3 shows warm ones)
        controller = ControllerProcess(root, emu.kubeconfig, NS, sink.api_url,
                                       leader_election=False, warm_scheduler_pods=0,
                                       env=as_deployed(root))  # fmt: skip
        await controller.start()
        await controller.wait_ready()
        assert controller.proc is not None
        proc = psutil.Process(controller.proc.pid)

        async def make(hint: str) -> dict[str, Any]:
            return daskcluster(hint)

        side = Side("ours", DASKCLUSTERS, make, sink.heartbeats)
        for run in range(runs):
            row = await lifecycle(emu, client, side, f"life{run}", workers=workers,
                                  detail=run == 0)  # fmt: skip
            for key, value in row.items():
                results[key].append(value)
        cpu, rss = usage(proc)
        return {k: statistics.median(v) for k, v in results.items()} | {
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


# -- part 3: warm scheduler pods vs cold ones ---------------------------------------------


async def _first_rpc(address: str, secret: dict[str, Any], workdir: Path) -> None:
    from distributed.core import rpc
    from distributed.security import Security

    files = {}
    for key in ("tls.crt", "tls.key"):
        path = workdir / key
        path.write_bytes(base64.b64decode(secret["data"][key]))
        files[key] = str(path)
    security = Security(tls_ca_file=files["tls.crt"], tls_client_cert=files["tls.crt"],
                        tls_client_key=files["tls.key"], require_encryption=True)  # fmt: skip
    async with rpc(address, connection_args=security.get_connection_args("client")) as r:
        await r.identity()


async def warm_vs_cold(root: Path, runs: int) -> dict[str, dict[str, float]]:
    from tests.kube.kubelet import start_kubelet

    emu = CountingEmulator(root)
    await emu.start()
    kubelet = await start_kubelet(emu.kubeconfig, emu.emulator.workdir)
    client = await KubeClient.connect(emu.kubeconfig)
    sink = HeartbeatSink(client)
    out: dict[str, dict[str, float]] = {}
    try:
        await install_crds(client)
        await ensure_namespace(client, NS)
        await sink.start()
        for mode, size in (("warm", 1), ("cold", 0)):
            (root / mode).mkdir()
            controller = ControllerProcess(root / mode, emu.kubeconfig, NS, sink.api_url,
                                           leader_election=False, warm_scheduler_pods=size,
                                           env=as_deployed(root))  # fmt: skip
            await controller.start()
            try:
                await controller.wait_ready()
                times: dict[str, list[float]] = collections.defaultdict(list)
                for run in range(runs):
                    if size:
                        await poll(lambda: _ready_warm_pod(client), 120, "a ready warm pod")
                    await _one_start(client, root / mode, f"{mode}{run}", times)
                out[mode] = {k: statistics.median(v) for k, v in times.items()}
            finally:
                await controller.terminate()
    finally:
        await sink.stop()
        await client.close()
        await kubelet.stop()
        await emu.stop()
    return out


async def _ready_warm_pod(client: KubeClient) -> bool:
    items, _ = await client.list(PODS, NS, label_selector=WARM_SELECTOR)
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for p in items
        if not p["metadata"].get("deletionTimestamp")
        for c in (p.get("status") or {}).get("conditions") or []
    )


async def _one_start(client: KubeClient, workdir: Path, hint: str,
                     times: dict[str, list[float]]) -> None:  # fmt: skip
    t0 = time.monotonic()
    name = (await client.create(DASKCLUSTERS, daskcluster(hint), NS))["metadata"]["name"]

    async def running() -> dict[str, Any] | None:
        status = (await client.get(DASKCLUSTERS, name, NS)).get("status") or {}
        if status.get("phase") == "Failed":
            raise RuntimeError(f"cluster {name} failed: {status.get('message')}")
        return status if status.get("phase") == "Running" else None

    status = await poll(running, 120, f"{name} Running")
    times["created -> Running s"].append(time.monotonic() - t0)
    secret = await client.get(SECRETS, f"dask-credentials-{name}", NS)
    await _first_rpc(status["schedulerAddress"], secret, workdir)
    times["created -> first RPC s"].append(time.monotonic() - t0)
    await client.delete(DASKCLUSTERS, name, NS)

    async def gone() -> bool:
        items, _ = await client.list(PODS, NS, label_selector=f"gateway.dask.org/cluster={name}")
        return not items

    await poll(gone, 60, f"{name}'s pods gone")


# -- part 2: many clusters on simulated pods ------------------------------------------------


async def many(root: Path, clusters: int, rate: float, burst: int,
               profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    # The emulator and the kubelet run in processes of their own: in this one they
    # would share an event loop with the creates and polls of 500 clusters.
    emu = EmulatorProcesses(root, simulated=True)
    await emu.start()
    client = await KubeClient.connect(emu.kubeconfig)
    client.limiter.rate, client.limiter.burst = 10_000.0, 10_000
    controller: ControllerProcess | None = None
    try:
        await install_crds(client)
        await ensure_namespace(client, NS)
        controller = ControllerProcess(
            root, emu.kubeconfig, NS, "http://127.0.0.1:1/api", name=f"many-{rate:g}",
            env=as_deployed(root),
            log_level="INFO",  # as deployed: DEBUG lines for 500 clusters cost CPU of their own
            leader_election=False, parallelism=20, k8s_api_rate_limit=rate,
            k8s_api_rate_limit_burst=burst,
            # Start timeouts count from the scheduler pod's creation, but the whole start is
            # capped at 3 timeouts from the DaskCluster's, time queued behind 499 others
            # included: at 50 req/s the last clusters' schedulers are made after about 60 s.
            scheduler_start_timeout=600.0, worker_start_timeout=600.0,
            # simulated pods run no process: a warm one could never be claimed
            warm_scheduler_pods=0,
        )  # fmt: skip
        if profile is not None:
            controller.profile = profile
        await controller.start()
        await controller.wait_ready()
        assert controller.proc is not None
        proc = psutil.Process(controller.proc.pid)
        cpu0, _ = usage(proc)
        before = await emu.of(client, "ours")
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

        await poll(converged, 600, "all clusters Running with 2 workers", period=1.0)
        elapsed = time.monotonic() - t0
        cpu1, rss = usage(proc)
        after = await emu.of(client, "ours")
        pods, _ = await client.list(PODS, NS)

        def spent(key: str) -> int:
            return after.get(key, 0) - before.get(key, 0)

        writes = {k: spent(k) for k in sorted(after) if " " in k and not k.startswith("GET")}
        print(f"controller writes, {clusters} clusters:", {k: v for k, v in writes.items() if v})

        return {
            "clusters": clusters,
            "rate limit": f"{rate:g}/{burst}",
            "creates issued s": created,
            "all Running s": elapsed,
            "pods": len(pods),
            "writes/cluster": spent("write") / clusters,
            "status writes/cluster": spent("PATCH daskclusters/status") / clusters,
            "reads+watches": spent("read") + spent("watch"),
            "controller CPU s": cpu1 - cpu0,
            "controller RSS MiB": rss / 2**20,
        }
    finally:
        if controller is not None:
            if profile is not None:
                await controller.terminate(60.0)  # cProfile writes its file on the way out
            else:
                await controller.kill()
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
    parser.add_argument("--profile", type=Path,
                        help="cProfile the controller of the simulated runs into this file")  # fmt: skip
    parser.add_argument("--warm-only", action="store_true",
                        help="only part 3: warm scheduler pods vs cold ones")  # fmt: skip
    parser.add_argument("--warm-runs", type=int, default=5, help="starts per mode in part 3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "warm").mkdir()
        modes = await warm_vs_cold(root / "warm", args.warm_runs)
        for mode, row in modes.items():
            table(f"{mode} scheduler start (process kubelet, median of {args.warm_runs})", row)
        if args.warm_only:
            return
        if not args.skip_lifecycle:
            (root / "life").mkdir()
            row = await lifecycles(root / "life", args.runs, args.workers)
            table(f"lifecycle (process kubelet, median of {args.runs}): "
                  f"create -> Running -> {args.workers} workers -> stop -> delete", row)  # fmt: skip
        for i, pair in enumerate(args.rates.split(",")):
            rate, burst = pair.split("/")
            (root / f"many{i}").mkdir()
            row = await many(root / f"many{i}", args.clusters, float(rate), int(burst),
                             args.profile.with_suffix(f".{i}.prof") if args.profile else None)  # fmt: skip
            table(f"{args.clusters} clusters x 2 workers (simulated pods)", row)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
