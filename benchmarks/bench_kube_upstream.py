"""Our controller and upstream dask-gateway-server's KubeController, side by side on one emulator.

One API emulator with the process kubelet (real dask processes), one after the
other on it:

- **ours**: ``jhub-gateway-controller`` with its DaskCluster CRD (``jhubgateway.dask.org``);
- **upstream**: ``dask-gateway-server kube-controller`` 2026.3.0 from a separate venv
  (``--upstream-venv``, default ``/tmp/upstream-dg``; made with
  ``python -m venv /tmp/upstream-dg && /tmp/upstream-dg/bin/pip install
  'dask-gateway-server[kubernetes]==2026.3.0' dask-gateway==2026.3.0``), with its own
  CRD (``gateway.dask.org``, schemaless as upstream ships it) and DaskCluster bodies made
  by upstream's own ``KubeBackend.make_cluster_object`` and ``KubeClusterConfig``.

Both sides get the same stand-in for the api service (a heartbeat sink that patches
``spec.replicas`` as the real api does), so only the controllers differ. Per lifecycle:
``new_cluster()`` until usable (create the DaskCluster -> ``status.phase`` Running, which
is when the api answers the client), ``scale(4)`` until 4 workers (the scale message to the
scheduler -> the scheduler's heartbeat lists 4 connected workers), stop and delete, and
the controller's API requests counted at the emulator. Then controller RSS (ours with
only the modules of its image: :func:`benchmarks.kubebench.as_deployed`).

Two things upstream needs that the emulator had to provide: ``v1 Endpoints`` (maintained
from EndpointSlices by ``tests/kube/apiserver/endpoints_v1.py``) and cluster DNS: upstream
workers dial ``tls://dask-<name>.<namespace>:8786``. The emulator has no DNS, so the
upstream pods get a ``sitecustomize`` that resolves ``dask-<name>.<namespace>`` from a
hosts file this script keeps from the scheduler pods' IPs. Upstream's default
``scheduler_cmd``/``worker_cmd`` (``dask-scheduler``/``dask-worker``) no longer exist in
distributed 2026.8, so both are set to ``dask scheduler|worker`` of *this* venv, which the
pods of our controller run too (it has the upstream client's scheduler preload): the
scheduler and worker processes are the same on both sides, only the controllers differ.
The process kubelet's pods share the host's network, so the upstream pods get extra args
(appended, last value wins) to bind their pod IP instead of every address.

Besides the totals, the table shows the controllers' own shares, from write times at
the emulator: created -> scheduler Pod created, scheduler ready -> Running written, and
``spec.replicas`` patched -> last worker Pod created. They are tens of milliseconds on
both sides; the rest is the pods' Python processes starting (``import distributed``).
The scheduler processes are the same on both sides; the workers differ by one setting
each controller defaults to: upstream's run under a nanny (two interpreters per pod),
ours without one (the kubelet restarts a crashed container; see
``jhub_gateway.controller.builders.worker``). ``--ours-worker-args --nanny`` runs ours
with a nanny too, to compare the controllers alone.

Run: ``.venv/bin/python benchmarks/bench_kube_upstream.py [--runs 3]``. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.kubebench import (  # noqa: E402
    CONTROLLER_UA,
    NS,
    CountingEmulator,
    Side,
    as_deployed,
    lifecycle,
    poll,
    usage,
)
from jhub_gateway.kube.client import (  # noqa: E402
    DASKCLUSTERS,
    PODS,
    KubeClient,
    KubeError,
    Resource,
)
from jhub_gateway.kube.informer import Informer  # noqa: E402
from tests.controller.kubeenv import (  # noqa: E402
    ControllerProcess,
    HeartbeatSink,
    daskcluster,
    ensure_namespace,
    free_port,
    install_crds,
)

UPSTREAM_INSTANCE = "upbench"
UPSTREAM_TOKEN = "upstream-controller"
UPSTREAM_DASKCLUSTERS = Resource("gateway.dask.org", "v1alpha1", "daskclusters")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
WORKERS = 4
POD_DASK = Path(sys.executable).parent / "dask"
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}

SITECUSTOMIZE = """\
# Cluster DNS for the emulator (which has none): dask-<name>.<ns> -> scheduler pod IP.
import json, os, socket
_FILE = os.environ.get("EMULATED_DNS_FILE")
if _FILE:
    _getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name:
            try:
                with open(_FILE) as f:
                    table = json.load(f)
            except (OSError, ValueError):
                table = {}
            short = name.rstrip(".").removesuffix(".svc.cluster.local").removesuffix(".svc")
            host = table.get(short, host)
        return _getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
"""

MAKE_BODY = """\
import json, sys
from traitlets.config import Config
from dask_gateway_server.backends.kubernetes.backend import KubeBackend, KubeClusterConfig
settings = json.loads(sys.argv[1])
cfg = Config()
for key, value in settings["config"].items():
    setattr(cfg.KubeClusterConfig, key, value)
backend = KubeBackend(config=cfg, gateway_instance=settings["instance"])
config = KubeClusterConfig(parent=backend)
print(json.dumps(backend.make_cluster_object("alice", {}, config)))
"""


def upstream_crd() -> dict[str, Any]:
    """Upstream's DaskCluster CRD as its chart ships it: a status subresource, no schema."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "daskclusters.gateway.dask.org"},
        "spec": {
            "group": "gateway.dask.org",
            "scope": "Namespaced",
            "names": {
                "kind": "DaskCluster",
                "plural": "daskclusters",
                "singular": "daskcluster",
                "listKind": "DaskClusterList",
            },  # fmt: skip
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def who(request: Any) -> str:
    """Which controller sent a request: ours by User-Agent, upstream's by its token."""
    if request.headers.get("User-Agent", "").startswith(CONTROLLER_UA):
        return "ours"
    if request.headers.get("Authorization") == f"Bearer {UPSTREAM_TOKEN}":
        return "upstream"
    return "other"


class UpstreamSink(HeartbeatSink):
    """The heartbeat sink for upstream's CRD (upstream's api patches ``/spec/replicas``)."""

    async def _heartbeat(self, request: web.Request) -> web.Response:
        public = request.match_info["name"]
        msg = await request.json()
        self.heartbeats.append((public, msg))
        ns, name = public.split(".", 1)
        count = msg.get("count")
        if isinstance(count, int):
            try:
                await self.client.patch(
                    UPSTREAM_DASKCLUSTERS, name, {"spec": {"replicas": count}}, ns
                )
            except KubeError as exc:
                return web.json_response({"error": "kube", "message": str(exc)}, status=503)
        return web.json_response({})

    async def _stop(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["name"].split(".", 1)
        await self.client.patch(UPSTREAM_DASKCLUSTERS, name, {"spec": {"active": False}}, ns)
        return web.json_response({})


class HostsFile:
    """``dask-<name>.<ns>`` -> scheduler pod IP, for the upstream pods' sitecustomize."""

    def __init__(self, client: KubeClient, path: Path) -> None:
        self.path = path
        self.informer = Informer(client, PODS, NS, label_selector="app.kubernetes.io/component=dask-scheduler", on_change=self._changed)  # fmt: skip
        self.path.write_text("{}")

    def _changed(self, etype: str, pod: dict[str, Any]) -> None:
        table = {}
        for (ns, _), p in self.informer.cache.items():
            cluster = (p["metadata"].get("labels") or {}).get("gateway.dask.org/cluster")
            ip = (p.get("status") or {}).get("podIP")
            if cluster and ip:
                table[f"dask-{cluster}.{ns}"] = ip
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        tmp.replace(self.path)

    async def start(self) -> None:
        self.informer.start()
        await self.informer.synced()

    async def stop(self) -> None:
        await self.informer.stop()


class UpstreamController:
    """``dask-gateway-server kube-controller`` from the upstream venv, as a process."""

    def __init__(self, venv: Path, workdir: Path, kubeconfig: Path, api_url: str) -> None:
        self.venv = venv
        self.log_path = workdir / "upstream-controller.log"
        self.config_path = workdir / "upstream_controller_config.py"
        self.kubeconfig = workdir / "upstream-kubeconfig"
        config = yaml.safe_load(kubeconfig.read_text())
        config["users"][0]["user"]["token"] = UPSTREAM_TOKEN
        self.kubeconfig.write_text(yaml.safe_dump(config))
        settings = {
            "gateway_instance": UPSTREAM_INSTANCE,
            "api_url": api_url,
            "address": f"127.0.0.1:{free_port()}",
            "k8s_api_rate_limit": 50,
            "k8s_api_rate_limit_burst": 100,
        }
        self.config_path.write_text(
            "".join(f"c.KubeController.{k} = {v!r}\n" for k, v in settings.items())
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(self.venv / "bin" / "dask-gateway-server"), "kube-controller",
                "-f", str(self.config_path), stdout=out, stderr=asyncio.subprocess.STDOUT,
                env=env,
            )  # fmt: skip

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


async def run_interleaved(emu: CountingEmulator, client: KubeClient,
                          runners: list[tuple[Side, int]], runs: int,
                          upstream: UpstreamController) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Lifecycles taking turns (ours, upstream, ours, ...), so both see the same machine load."""
    rows: dict[str, dict[str, list[float]]] = {
        side.who: collections.defaultdict(list) for side, _ in runners
    }
    failed: set[str] = set()
    for i in range(runs):
        for side, _ in runners:
            if side.who in failed:
                continue
            try:
                row = await lifecycle(emu, client, side, f"life{i}", detail=i == 0)
            except (TimeoutError, RuntimeError) as exc:
                print(f"{side.who} did not complete a lifecycle: {exc}")
                if side.who == "upstream":
                    print("upstream controller log (tail):\n" + upstream.log())
                failed.add(side.who)
                continue
            for key, value in row.items():
                rows[side.who][key].append(value)
    out: dict[str, dict[str, Any]] = {}
    for side, pid in runners:
        if side.who in failed or not rows[side.who]:
            continue
        _, rss = usage(psutil.Process(pid))
        medians = {k: statistics.median(v) for k, v in rows[side.who].items()}
        out[side.who] = medians | {"controller RSS MiB": rss / 2**20}
    return out


async def upstream_body(venv: Path, env: dict[str, str]) -> dict[str, Any]:
    settings = {
        "instance": UPSTREAM_INSTANCE,
        "config": {
            "namespace": NS,
            "image": "ghcr.io/dask/dask-gateway:2026.3.0",
            # The pods of both sides run the same dask (this venv's, which has the upstream
            # client's scheduler preload too): only the controllers differ.
            "scheduler_cmd": [str(POD_DASK), "scheduler"],
            "worker_cmd": [str(POD_DASK), "worker"],
            "scheduler_cores": 0.1,
            "worker_cores": 0.1,
            "scheduler_memory": "256M",
            "worker_memory": "256M",
            "environment": env,
            # Pods of the process kubelet share the host's network namespace: bind the
            # pod's own IP, not every address (upstream passes --host "" and ":8787"),
            # else any other process on port 8786/8787 makes the scheduler fail.
            # Extra container config is appended and click keeps an option's last value.
            "scheduler_extra_container_config": {
                "env": [POD_IP_ENV],
                "args": [
                    "--host",
                    "$(POD_IP)",
                    "--dashboard-address",
                    "$(POD_IP):8787",
                    "--dg-api-address",
                    "$(POD_IP):8788",
                ],
            },  # fmt: skip
            "worker_extra_container_config": {
                "env": [POD_IP_ENV],
                "args": ["--host", "$(POD_IP)", "--dashboard-address", "$(POD_IP):8787"],
            },
        },
    }
    proc = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "python"), "-c", MAKE_BODY, json.dumps(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"upstream KubeBackend could not make a DaskCluster: {err.decode()}")
    return json.loads(out)


def table(rows: dict[str, dict[str, Any]]) -> None:
    keys = list(next(iter(rows.values())))
    names = list(rows)
    width = max(len(k) for k in keys)
    print(f"\n| {'metric':<{width}} | " + " | ".join(names) + " | ours/upstream |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(n) + 2) for n in names) + "|---|")
    for key in keys:
        values = [rows[n].get(key) for n in names]
        shown = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in values]
        ratio = ""
        if len(values) == 2 and all(isinstance(v, (int, float)) and v for v in values):
            ratio = f"{values[0] / values[1]:.2f}x"
        print(f"| {key:<{width}} | " + " | ".join(shown) + f" | {ratio} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--upstream-venv", type=Path, default=Path("/tmp/upstream-dg"))
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp dir)")
    parser.add_argument("--sides", default="ours,upstream", help="which controllers to run")
    parser.add_argument("--ours-worker-args", default="",
                        help="extra args for our worker pods, to measure pod settings (e.g. "
                             "--nanny: the same worker processes as upstream's)")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="also print the medians as one JSON line (for benchmarks/run.py)")  # fmt: skip
    args = parser.parse_args()
    from tests.kube.kubelet import start_kubelet

    venv: Path = args.upstream_venv
    if not (venv / "bin" / "dask-gateway-server").exists():
        print(f"upstream not run: {venv}/bin/dask-gateway-server does not exist (see --help)")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        # No RBAC: upstream's controller is told apart by a token of its own.
        emu = CountingEmulator(root, who=who, rbac=False)
        await emu.start()
        kubelet = await start_kubelet(emu.kubeconfig, emu.emulator.workdir)
        client = await KubeClient.connect(emu.kubeconfig)
        results: dict[str, dict[str, Any]] = {}
        ours_sink, up_sink = HeartbeatSink(client), UpstreamSink(client)
        hosts = HostsFile(client, root / "hosts.json")
        try:
            await install_crds(client)
            await client.create(CRDS, upstream_crd())
            await ensure_namespace(client, NS)
            await ours_sink.start()
            await up_sink.start()
            await hosts.start()

            sides = args.sides.split(",")
            runners: list[tuple[Side, int]] = []
            # cold starts against upstream's (which has no warm pods);
            # bench_kube_controller.py --warm-only measures ours with a warm pod waiting
            controller = ControllerProcess(root, emu.kubeconfig, NS, ours_sink.api_url,
                                           leader_election=False, env=as_deployed(root),
                                           warm_scheduler_pods=0)  # fmt: skip
            upstream = UpstreamController(venv, root, emu.kubeconfig, up_sink.api_url)
            try:
                if "ours" in sides:
                    await controller.start()
                    await controller.wait_ready()
                    assert controller.proc is not None

                    extra = args.ours_worker_args.split()
                    config = {"workerExtraContainerConfig": {"args": extra}} if extra else {}

                    async def ours(hint: str) -> dict[str, Any]:
                        name = f"{hint}-{int(time.time() * 1000) % 10**8}"
                        return daskcluster(name, config=config)

                    runners.append(
                        (
                            Side("ours", DASKCLUSTERS, ours, ours_sink.heartbeats),
                            controller.proc.pid,
                        )
                    )
                if "upstream" in sides and (venv / "bin" / "dask-gateway-server").exists():
                    shim = root / "dns-shim"
                    shim.mkdir()
                    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
                    env = {"PYTHONPATH": str(shim), "EMULATED_DNS_FILE": str(hosts.path)}
                    await upstream.start()
                    try:
                        await poll(lambda: _watching(emu), 60, "upstream informers", period=0.2)
                    except TimeoutError:
                        print("upstream controller did not start; its log:\n" + upstream.log())
                        raise
                    assert upstream.proc is not None

                    async def theirs(hint: str) -> dict[str, Any]:
                        return await upstream_body(venv, env)

                    side = Side("upstream", UPSTREAM_DASKCLUSTERS, theirs, up_sink.heartbeats)
                    runners.append((side, upstream.proc.pid))
                results = await run_interleaved(emu, client, runners, args.runs, upstream)
            finally:
                await controller.kill()
                await upstream.kill()
        finally:
            await hosts.stop()
            await ours_sink.stop()
            await up_sink.stop()
            await client.close()
            await kubelet.stop()
            await emu.stop()
    print(f"\none lifecycle each, median of {args.runs}, same emulator and process kubelet:")
    if results:
        table(results)
    if args.json:
        print(json.dumps(results))


async def _watching(emu: CountingEmulator) -> bool:
    # upstream's informers: DaskClusters, Pods, Endpoints (list + watch each)
    return emu.counts.get(("upstream", "watch"), 0) >= 3


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
