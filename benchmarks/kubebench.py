"""The harness both Kubernetes benchmarks share: a counting emulator and one cluster lifecycle.

:class:`CountingEmulator` counts every request at the API emulator by client
(``who``: a function of the request) and kind (``read``, ``watch``, ``write``,
and ``"<METHOD> <resource>"``), so a controller's own calls are counted, not the
kubelet's nor the benchmark's. :func:`lifecycle` runs one cluster through
create -> ``Running`` -> ``scale(n)`` -> stop -> delete against a :class:`Side`
(one controller under test) and returns its timings and request counts.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from jhub_gateway.dashboard_credential import HEADER, dashboard_credential
from jhub_gateway.kube.client import PODS, SECRETS, KubeClient, Resource
from tests.kube.apiserver import Emulator

CONTROLLER_UA = "jhub-gateway-controller"
COUNTS_PATH = "/_bench/counts"
REPO = Path(__file__).resolve().parents[1]
NS = "bench"


def as_deployed(workdir: Path) -> dict[str, str]:
    """Environment for a controller process that imports what it would in its image.

    This venv has the test-only ``kubernetes-validate``, which
    ``kubernetes_asyncio.dynamic`` imports whenever it is installed, and it pulls in
    jsonschema with its format checkers (+30 MiB RSS and ~1.5 s CPU at start). The
    controller image (``.[server,kube,kerberos]``) and upstream's venv have none, so
    a module of that name that fails to import is put first on the path.
    """
    shim = workdir / "as-deployed" / "kubernetes_validate"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text('raise ImportError("not in the controller image")\n')
    path = [str(shim.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


def by_user_agent(request: Any) -> str:
    """Our controller by its User-Agent; every other client is ``other``."""
    agent = request.headers.get("User-Agent", "")
    return "ours" if agent.startswith(CONTROLLER_UA) else "other"


def resource_of(path: str) -> str:
    """``pods``, ``daskclusters/status``, ... of an API path."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :]
    else:
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if not rest:
        return "?"
    return rest[0] + ("/" + rest[2] if len(rest) > 2 else "")


class CountingEmulator:
    """The API emulator with a counter of requests per (client, kind of request)."""

    def __init__(self, workdir: Path, *, who: Callable[[Any], str] = by_user_agent,
                 rbac: bool = True) -> None:  # fmt: skip
        self.emulator = Emulator(workdir / "work", rbac=rbac)
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        # (monotonic time answered, client, method, path) of every write
        self.writes: list[tuple[float, str, str, str]] = []
        self.kubeconfig = workdir / "kubeconfig"
        handle = self.emulator.router.handle

        async def counting(request: Any) -> Any:
            if request.path == COUNTS_PATH:  # for a benchmark in another process
                return web.json_response([[w, k, n] for (w, k), n in self.counts.items()])
            client = who(request)
            if request.method == "GET":
                watch = request.query.get("watch", "").lower() in ("true", "1")
                kind = "watch" if watch else "read"
            else:
                kind = "write"
            self.counts[(client, kind)] += 1
            self.counts[(client, f"{request.method} {resource_of(request.path)}")] += 1
            answer = await handle(request)
            if kind == "write":
                self.writes.append((time.monotonic(), client, request.method, request.path))
            return answer

        self.emulator.router.handle = counting  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.emulator.start()
        self.emulator.write_kubeconfig(self.kubeconfig)

    def of(self, client: str) -> dict[str, int]:
        return {k: v for (who, k), v in self.counts.items() if who == client}

    async def stop(self) -> None:
        await self.emulator.stop()


class EmulatorProcesses:
    """A :class:`CountingEmulator` and a kubelet, each in a process of its own.

    So that neither competes with the benchmark's own client for one event loop
    (with hundreds of clusters, the emulator's and the kubelet's Python work is
    what limits the rate). The counts are read over HTTP (``COUNTS_PATH``).
    """

    def __init__(self, workdir: Path, *, simulated: bool) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self.simulated = simulated
        self.procs: list[asyncio.subprocess.Process] = []
        self.url = ""

    async def _spawn(self, *args: str) -> None:
        with (self.workdir / f"{args[0]}.log").open("ab") as out:
            self.procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.kubebench", *args, cwd=REPO,
                stdout=out, stderr=asyncio.subprocess.STDOUT))  # fmt: skip

    async def start(self) -> None:
        await self._spawn("emulator", str(self.workdir))
        await poll(self._kubeconfig_written, 60, "the emulator process", period=0.1)
        await self._spawn("kubelet", str(self.kubeconfig), str(self.workdir / "work"),
                          *(["--simulated"] if self.simulated else []))  # fmt: skip

    async def _kubeconfig_written(self) -> bool:
        return self.kubeconfig.exists() and bool(self.kubeconfig.read_text().strip())

    async def counts(self, client: KubeClient) -> dict[tuple[str, str], int]:
        rows = await client._call("GET", COUNTS_PATH)
        return {(w, k): int(n) for w, k, n in rows}

    async def of(self, client: KubeClient, who: str) -> dict[str, int]:
        return {k: v for (w, k), v in (await self.counts(client)).items() if w == who}

    async def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _serve_emulator(workdir: Path) -> None:
    emu = CountingEmulator(workdir)
    await emu.emulator.start()
    tmp = workdir / "kubeconfig.tmp"
    emu.emulator.write_kubeconfig(tmp)
    tmp.rename(emu.kubeconfig)  # whole, for the parent polling for it
    await _until_terminated()
    await emu.stop()


async def _serve_kubelet(kubeconfig: Path, workdir: Path, simulated: bool) -> None:
    from tests.kube.kubelet import start_kubelet

    kubelet = await start_kubelet(kubeconfig, workdir, simulated=simulated)
    await _until_terminated()
    await kubelet.stop()


async def _until_terminated() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


async def poll(check: Callable[[], Awaitable[Any]], timeout: float, what: str,
               period: float = 0.05) -> Any:  # fmt: skip
    """Call ``check()`` until it returns something truthy, and return that."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = await check()
        if result:
            return result
        await asyncio.sleep(period)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def usage(proc: psutil.Process) -> tuple[float, int]:
    """CPU seconds (user + system) and RSS bytes of a process."""
    times = proc.cpu_times()
    return times.user + times.system, proc.memory_info().rss


async def post_scale(api_address: str, token: str, count: int) -> None:
    """What the service sends a scheduler for ``cluster.scale(count)``."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api_address}/api/comm", json={"op": "scale", "count": count},
                                headers={"Authorization": f"token {token}"}) as resp:  # fmt: skip
            resp.raise_for_status()


async def connected_workers(dashboard: str, token: str) -> int:
    """Workers connected to the scheduler, from its own HTTP server (the same on any side).

    Our schedulers' dashboards want the credential Traefik's forward-auth would add
    (upstream's ignore the header).
    """
    headers = {HEADER: dashboard_credential(token)}
    async with aiohttp.ClientSession(headers=headers) as session:
        try:
            async with session.get(f"{dashboard}/json/counts.json") as resp:
                resp.raise_for_status()
                return int((await resp.json(content_type=None)).get("workers", 0))
        except (aiohttp.ClientError, ValueError):
            return 0


@dataclass
class Side:
    """One controller under test: its name at the counter, its CRD, how to make a DaskCluster."""

    who: str
    resource: Resource
    make: Callable[[str], Awaitable[dict[str, Any]]]
    heartbeats: list[tuple[str, dict[str, Any]]]


def _logs(emu: CountingEmulator, prefix: str, limit: int = 3000) -> str:
    files = sorted((emu.emulator.workdir / "logs").glob(f"{NS}_{prefix}*"))
    return "".join(f.read_text(errors="replace")[-limit:] for f in files[:1]) or "(no log)"


async def lifecycle(emu: CountingEmulator, client: KubeClient, side: Side, hint: str, *,
                    workers: int = 4, detail: bool = False) -> dict[str, float]:  # fmt: skip
    """create -> Running -> ``scale(workers)`` until connected -> stop -> delete -> no pods.

    ``new_cluster()`` until usable is create until ``status.phase`` Running (when
    the service answers the client); ``scale()`` is the scale message to the
    scheduler until it counts the workers connected.
    """
    before = collections.Counter(emu.counts)
    body = await side.make(hint)
    t0 = time.monotonic()
    name = (await client.create(side.resource, body, NS))["metadata"]["name"]
    public = f"{NS}.{name}"

    async def phase(wanted: str) -> dict[str, Any] | None:
        st = (await client.get(side.resource, name, NS)).get("status") or {}
        if st.get("phase") == "Failed":
            logs = _logs(emu, f"dask-scheduler-{name}")
            raise RuntimeError(f"{side.who}: cluster failed: {st}\nscheduler log:\n{logs}")
        return st if st.get("phase") == wanted else None

    st = await poll(lambda: phase("Running"), 120, f"{side.who} Running")
    started = time.monotonic() - t0
    secret = await client.get(SECRETS, f"dask-credentials-{name}", NS)
    token = base64.b64decode(secret["data"]["api-token"]).decode()
    api, dashboard = st.get("apiAddress"), st.get("dashboardAddress")
    if not api:  # upstream keeps no addresses in status: the scheduler pod's IP
        pod = await client.get(PODS, f"dask-scheduler-{name}", NS)
        api = f"http://{pod['status']['podIP']}:8788"
        dashboard = f"http://{pod['status']['podIP']}:8787"
    t1 = time.monotonic()
    await post_scale(api, token, workers)

    async def scaled() -> bool:
        return await connected_workers(dashboard, token) >= workers

    try:
        await poll(scaled, 120, f"{side.who} {workers} workers")
    except TimeoutError as exc:
        beats = [m for n, m in side.heartbeats if n == public][-1:]
        tail = _logs(emu, f"dask-worker-{name}-", 1500)
        raise TimeoutError(f"{exc}; last heartbeat {beats}; a worker's log:\n{tail}") from None
    scale_s = time.monotonic() - t1
    # The controller's share of new_cluster(): created -> scheduler Pod created, and the
    # scheduler Pod's last status write (ready) -> the status write that made it Running.
    sched = f"/pods/dask-scheduler-{name}"
    made = next(t for t, who, m, path in emu.writes
                if t > t0 and who == side.who and m == "POST" and path.endswith("/pods"))  # fmt: skip
    running = [t for t, who, m, path in emu.writes if t0 < t < t1 and who == side.who
               and path.endswith(f"/daskclusters/{name}/status")]  # fmt: skip
    ready = [t for t, _, _, path in emu.writes if path.endswith(sched + "/status")
             and t0 < t < running[-1]]  # fmt: skip
    # The controller's share of scale(): from the heartbeat's spec.replicas patch to its
    # last worker pod created (the rest is the pods' processes starting and connecting).
    patched = next(t for t, _, m, path in emu.writes
                   if t > t1 and m == "PATCH" and path.endswith(f"/daskclusters/{name}"))  # fmt: skip
    pods = [t for t, who, m, path in emu.writes
            if t > patched and who == side.who and m == "POST" and path.endswith("/pods")]  # fmt: skip
    await client.patch(side.resource, name, {"spec": {"active": False}}, NS)
    await poll(lambda: phase("Stopped"), 120, f"{side.who} Stopped")
    await client.delete(side.resource, name, NS)

    async def no_pods() -> bool:
        pods, _ = await client.list(PODS, NS, label_selector=f"gateway.dask.org/cluster={name}")
        return not pods

    await poll(no_pods, 120, f"{side.who} pods gone")
    await asyncio.sleep(1.0)  # let the controller finish reacting to the deletes
    diff = collections.Counter(emu.counts)
    diff.subtract(before)
    mine = {k: v for (who, k), v in diff.items() if who == side.who}
    if detail:
        writes = {k: v for k, v in sorted(mine.items()) if " " in k and not k.startswith("GET")}
        print(f"{side.who}: writes of lifecycle {hint}: {writes}")
    return {
        "new_cluster() until usable s": started,
        "  of it: created -> scheduler pod created s": made - t0,
        "  of it: scheduler ready -> Running written s": running[-1] - ready[-1],
        f"scale({workers}) until {workers} workers s": scale_s,
        "  of it: scale message -> spec.replicas patched s": patched - t1,
        "  of it: spec.replicas -> pods created s": max(pods[:workers]) - patched,
        "API writes": mine.get("write", 0),
        "API reads": mine.get("read", 0),
        "API watches": mine.get("watch", 0),
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="run a part of the benchmark's Kubernetes")
    sub = parser.add_subparsers(dest="part", required=True)
    sub.add_parser("emulator").add_argument("workdir", type=Path)
    kubelet_args = sub.add_parser("kubelet")
    kubelet_args.add_argument("kubeconfig", type=Path)
    kubelet_args.add_argument("workdir", type=Path)
    kubelet_args.add_argument("--simulated", action="store_true")
    args = parser.parse_args()
    if args.part == "emulator":
        asyncio.run(_serve_emulator(args.workdir))
    else:
        asyncio.run(_serve_kubelet(args.kubeconfig, args.workdir, args.simulated))
