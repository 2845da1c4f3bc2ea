"""Local backend: jhub-gateway vs upstream dask-gateway-server, side by side in one run.

Both servers are driven by the same (upstream ``dask_gateway``) client so only the
servers differ. Measures, per round (``measure_round``, which ``run.py`` alternates
between the servers) and as medians over ``--runs`` rounds here:

- cold start: ``Gateway.new_cluster()`` until a Client is connected to the scheduler;
- ``scale(10)``: from ``cluster.scale(10)`` until 10 workers are connected;
- RPC: one ``client.submit(...).result()``, through the proxy and direct to the scheduler;
- 100 MB: ``run_on_scheduler`` returning 100 MB, through the proxy and direct;
- RSS of the service (+ its proxy process) with 20 idle clusters.

Run: ``.venv/bin/python benchmarks/bench_local.py --runs 5``. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from dask_gateway import Gateway
from dask_gateway.auth import BasicAuth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.gatewaytools import GatewayProcess, free_port  # noqa: E402
from tests.polling import wait_for  # noqa: E402

UPSTREAM_CONFIG = """
c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{proxy_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.ClusterConfig.scheduler_cmd = ["{bindir}/dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["{bindir}/dask", "worker"]
c.UnsafeLocalBackend.clusters_directory = "{root}/clusters"
c.ClusterConfig.worker_memory = "512 M"
c.DaskGateway.log_level = "WARN"
"""


class UpstreamServer:
    def __init__(self, root: Path):
        self.root = root
        api_port, proxy_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{proxy_port}"
        (root / "clusters").mkdir()
        self.config = root / "dask_gateway_config.py"
        self.config.write_text(
            UPSTREAM_CONFIG.format(
                api_port=api_port,
                proxy_port=proxy_port,
                root=root,
                bindir=Path(sys.executable).parent,
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.root / "upstream.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dask_gateway_server", "-f", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )

        def healthy() -> bool:
            try:
                with Gateway(self.address, auth=BasicAuth("bench")) as gw:
                    gw.list_clusters()
                return True
            except Exception:
                return False

        wait_for(healthy, timeout=60, interval=0.2, what="upstream server")

    def rss(self) -> int:
        assert self.proc is not None
        parent = psutil.Process(self.proc.pid)
        procs = [parent] + [c for c in parent.children() if "proxy" in " ".join(c.cmdline())]
        return sum(p.memory_info().rss for p in procs)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
        for proc in psutil.process_iter(["cwd"]):
            if (proc.info["cwd"] or "").startswith(str(self.root)):
                proc.kill()


class OurServer:
    """jhub-gateway; ``pool=False`` turns pre-started schedulers off (every start cold)."""

    def __init__(self, root: Path, pool: bool = True):
        self.gw = GatewayProcess(root, "" if pool else "c.LocalBackend.pool_size = 0\n")
        self.address = self.gw.address
        self.data_dir = self.gw.data_dir

    def start(self) -> None:
        self.gw.start()

    def rss(self) -> int:
        assert self.gw.proc is not None
        parent = psutil.Process(self.gw.proc.pid)
        procs = [parent] + [c for c in parent.children() if "traefik" in c.name()]
        return sum(p.memory_info().rss for p in procs)

    def stop(self) -> None:
        self.gw.kill_everything()


PAYLOAD_MB = 100


def _interleaved(clients: dict[str, Any], fn: Callable[[Any], object], n: int) -> dict[str, float]:
    """Median seconds of ``fn(client)`` per label, samples alternating between the
    clients and which of them goes first."""
    times: dict[str, list[float]] = {label: [] for label in clients}
    for i in range(n):
        order = list(clients.items())
        for label, client in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn(client)
            times[label].append(time.perf_counter() - t0)
    return {label: statistics.median(ts) for label, ts in times.items()}


def measure_round(address: str, workers: int = 10) -> dict[str, float]:
    """One round against a running server: one cold start, scale-up, RPC and transfer.

    Direct means a second Client straight to the scheduler's own address with the
    cluster's TLS credentials, bypassing the proxy.
    """
    from distributed import Client

    with Gateway(address, auth=BasicAuth("bench")) as gw:
        t0 = time.perf_counter()
        cluster = gw.new_cluster()
        client = cluster.get_client(set_as_default=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        cluster.scale(workers)
        client.wait_for_workers(workers, timeout=300)
        scale = time.perf_counter() - t0
        direct = Client(
            client.scheduler_info()["address"], security=cluster.security, set_as_default=False
        )
        out: dict[str, float] = {"cold_start": cold, f"scale{workers}": scale}
        try:
            clients = {"proxied": client, "direct": direct}
            for c in clients.values():
                c.submit(int, 0).result()  # warm the worker and the function cache
            # interleaved, each pair in turn order, so both paths see the same machine
            # (the ten just-started workers settle during the first samples)
            rpc = _interleaved(clients, lambda c: c.submit(int, 1, pure=False).result(), 30)
            mb100 = _interleaved(clients, lambda c: c.run_on_scheduler(_payload, PAYLOAD_MB), 3)
            for label in clients:
                out[f"rpc_{label}_ms"] = 1000 * rpc[label]
                out[f"mb100_{label}"] = mb100[label]
        finally:
            direct.close()
            client.close()
            cluster.shutdown()
    return out


def _pool_ready(data_dir: Path) -> bool:
    """An unclaimed pre-started scheduler has finished its imports."""
    for log in (data_dir / "clusters").glob("pool-*/scheduler.log"):
        if (
            not (log.parent / "run" / "api-token").exists()
            and "pooled_scheduler: ready" in log.read_text()
        ):
            return True
    return False


def measure_warm(address: str, data_dir: Path, first: bool = False) -> dict[str, float]:
    """One warm start: ``new_cluster()`` until a Client is connected, claiming a
    pre-started scheduler (waits until one is ready first, unless ``first``: a hub
    user's pool starts with their first cluster when the service isolates users)."""
    with Gateway(address, auth=BasicAuth("bench")) as gw:
        if not first:
            wait_for(lambda: _pool_ready(data_dir), timeout=120, interval=0.1, what="a ready pool")
        t0 = time.perf_counter()
        cluster = gw.new_cluster()
        client = cluster.get_client(set_as_default=False)
        warm = time.perf_counter() - t0
        client.close()
        cluster.shutdown()
    return {"warm_start": warm}


def _payload(mb: int) -> bytes:
    return b"x" * (mb * 2**20)


@contextlib.contextmanager
def idle_clusters(address: str, clusters: int) -> Iterator[None]:
    """``clusters`` idle RUNNING clusters for the duration of the block."""
    with Gateway(address, auth=BasicAuth("bench")) as gw:
        names = [gw.submit() for _ in range(clusters)]
        try:
            wait_for(
                lambda: sum(r.status.name == "RUNNING" for r in gw.list_clusters()) == clusters,
                timeout=300,
                interval=0.5,
                what=f"{clusters} idle clusters",
            )
            time.sleep(2)  # let the service settle after the burst before sampling memory
            yield
        finally:
            for name in names:
                gw.stop_cluster(name)


def hold_idle(address: str, clusters: int) -> None:
    """For ``run.py``: say ``ready`` once the clusters run, stop them at a line on stdin."""
    with idle_clusters(address, clusters):
        print("ready", flush=True)
        sys.stdin.readline()


def idle_rss(server, clusters: int = 20) -> float:
    """Service (+ proxy) RSS in MiB with ``clusters`` idle clusters."""
    with idle_clusters(server.address, clusters):
        return server.rss() / 2**20


def measure(server, runs: int) -> dict[str, float]:
    rounds = [measure_round(server.address) for _ in range(runs)]
    out = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    out["rss_mb"] = idle_rss(server)
    return out


def warm_median(runs: int) -> float:
    """Median warm start of ``runs`` against a fresh jhub-gateway with pools on."""
    with tempfile.TemporaryDirectory(prefix="bench-warm-", ignore_cleanup_errors=True) as tmp:
        server = OurServer(Path(tmp))
        server.start()
        try:
            measure_warm(server.address, server.data_dir, first=True)  # warms caches
            starts = [measure_warm(server.address, server.data_dir) for _ in range(runs)]
            return statistics.median(s["warm_start"] for s in starts)
        finally:
            server.stop()


def run_one(label: str, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{label}-", ignore_cleanup_errors=True) as tmp:
        server = UpstreamServer(Path(tmp)) if label == "upstream" else OurServer(Path(tmp), False)
        server.start()
        try:
            out = measure(server, runs)
            if label == "upstream":
                out["warm_start"] = out["cold_start"]  # it has no pre-started schedulers
            else:
                out["warm_start"] = warm_median(runs)
            return out
        except Exception:
            log = Path(tmp) / ("upstream.log" if label == "upstream" else "gateway.log")
            print(
                f"{label} failed; last log lines:\n" + log.read_text(errors="replace")[-3000:],
                file=sys.stderr,
            )
            raise
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["upstream", "jhub-gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--round", metavar="ADDRESS", help="one round against a running server")
    parser.add_argument("--workers", type=int, default=10, help="workers of --round")
    parser.add_argument(
        "--warm-round",
        nargs=2,
        metavar=("ADDRESS", "DATA_DIR"),
        help="one warm start against a running jhub-gateway with pools on",
    )
    parser.add_argument("--hold-idle", nargs=2, metavar=("ADDRESS", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.round:
        print(json.dumps(measure_round(args.round, args.workers)))
        return
    if args.warm_round:
        print(json.dumps(measure_warm(args.warm_round[0], Path(args.warm_round[1]))))
        return
    if args.hold_idle:
        hold_idle(args.hold_idle[0], int(args.hold_idle[1]))
        return
    if args.only:
        print(json.dumps(run_one(args.only, args.runs)))
        return
    # Each server is measured in its own process: the upstream client's Gateway.__del__
    # can deadlock a later run's event loop when it is garbage-collected there.
    results = {}
    for label in ("upstream", "jhub-gateway"):
        out = subprocess.run(
            [sys.executable, __file__, "--runs", str(args.runs), "--only", label],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if out.returncode != 0:
            raise SystemExit(f"{label} run failed:\n{out.stderr[-4000:]}")
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
    up, ours = results["upstream"], results["jhub-gateway"]
    print(f"| metric (median of {args.runs}) | upstream | jhub-gateway | ratio |")
    print("|---|---|---|---|")
    for key, label in (
        ("cold_start", "new_cluster() until a Client is connected, cold (s)"),
        ("warm_start", "new_cluster() until a Client is connected, warm (s)"),
        ("scale10", "scale(10) until 10 workers (s)"),
        ("rpc_proxied_ms", "submit round trip through the proxy (ms)"),
        ("rpc_direct_ms", "submit round trip direct (ms)"),
        ("mb100_proxied", "100 MB from the scheduler through the proxy (s)"),
        ("mb100_direct", "100 MB from the scheduler direct (s)"),
        ("rss_mb", "service RSS, 20 idle clusters (MiB)"),
    ):
        print(f"| {label} | {up[key]:.3f} | {ours[key]:.3f} | {ours[key] / up[key]:.2f}x |")


if __name__ == "__main__":
    main()
