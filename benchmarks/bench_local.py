"""Local backend: jhub-gateway vs upstream dask-gateway-server, side by side in one run.

Both servers are driven by the same (upstream ``dask_gateway``) client so only the
servers differ. Measures, as medians over ``--runs`` runs:

- ``new_cluster``: ``Gateway.new_cluster()`` until a Client is connected to the scheduler;
- ``scale(2)``: from ``cluster.scale(2)`` until 2 workers are connected;
- round trip: one ``client.submit(...).result()`` through the proxy;
- RSS of the service (+ its proxy process) with 20 idle clusters.

Run: ``.venv/bin/python benchmarks/bench_local.py --runs 5``. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from dask_gateway import Gateway
from dask_gateway.auth import BasicAuth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.gatewaytools import GatewayProcess, free_port, wait_for  # noqa: E402

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
    def __init__(self, root: Path):
        self.gw = GatewayProcess(root)
        self.address = self.gw.address

    def start(self) -> None:
        self.gw.start()

    def rss(self) -> int:
        assert self.gw.proc is not None
        parent = psutil.Process(self.gw.proc.pid)
        procs = [parent] + [c for c in parent.children() if "traefik" in c.name()]
        return sum(p.memory_info().rss for p in procs)

    def stop(self) -> None:
        self.gw.kill_everything()


def measure(server, runs: int) -> dict[str, float]:
    starts, scales, trips = [], [], []
    with Gateway(server.address, auth=BasicAuth("bench")) as gw:
        for _ in range(runs):
            t0 = time.perf_counter()
            cluster = gw.new_cluster()
            client = cluster.get_client(set_as_default=False)
            starts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cluster.scale(2)
            client.wait_for_workers(2, timeout=120)
            scales.append(time.perf_counter() - t0)
            client.submit(int, 0).result()
            for i in range(20):
                t0 = time.perf_counter()
                client.submit(lambda x: x + 1, i, pure=False).result()
                trips.append(time.perf_counter() - t0)
            client.close()
            cluster.shutdown()
        names = [gw.submit() for _ in range(20)]
        wait_for(
            lambda: sum(r.status.name == "RUNNING" for r in gw.list_clusters()) == 20,
            timeout=180,
            interval=0.5,
            what="20 idle clusters",
        )
        time.sleep(2)  # let the service settle after the burst before sampling memory
        rss = server.rss()
        for name in names:
            gw.stop_cluster(name)
    return {
        "new_cluster": statistics.median(starts),
        "scale2": statistics.median(scales),
        "roundtrip_ms": statistics.median(trips) * 1000,
        "rss_mb": rss / 2**20,
    }


def run_one(label: str, runs: int) -> dict[str, float]:
    cls = UpstreamServer if label == "upstream" else OurServer
    with tempfile.TemporaryDirectory(prefix=f"bench-{label}-", ignore_cleanup_errors=True) as tmp:
        server = cls(Path(tmp))
        server.start()
        try:
            return measure(server, runs)
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
    args = parser.parse_args()
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
        ("new_cluster", "new_cluster() until usable (s)"),
        ("scale2", "scale(2) until 2 workers (s)"),
        ("roundtrip_ms", "submit round trip (ms)"),
        ("rss_mb", "service RSS, 20 idle clusters (MiB)"),
    ):
        print(f"| {label} | {up[key]:.3f} | {ours[key]:.3f} | {ours[key] / up[key]:.2f}x |")


if __name__ == "__main__":
    main()
