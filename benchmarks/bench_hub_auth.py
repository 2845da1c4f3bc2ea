"""JupyterHub auth: jhub-gateway vs upstream dask-gateway-server against one real hub.

Both servers run as external services of the same hub and are hit with
``GET /api/v1/clusters/``, through each one's public address (Traefik / upstream's
proxy: what clients use) and direct on the API port:

- warm, cookie: the upstream client's pattern (token once, then the session cookie);
- warm, token header: every request carries ``Authorization: jupyterhub <token>``
  (our client's pattern);
- cold: a fresh token per request; counts hub ``/hub/api/user`` calls per request.

Throughput (requests/s), p99 latency and CPU µs per request of the service and of
its proxy (user + system time of the processes over the run / requests) at 1, 32
and 128 concurrent clients; each case alternates which server goes first and
keeps the median of ``--rounds``. ``run.py`` reuses ``hub_gateways`` and ``load``
for its API rows. Run: ``.venv/bin/python benchmarks/bench_hub_auth.py
[--rounds 3] [--where public]``. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.gatewaytools import free_port  # noqa: E402
from tests.hubtools import run_hub  # noqa: E402
from tests.polling import until  # noqa: E402

OURS, UPSTREAM = "dask-gateway", "upstream-gateway"

UPSTREAM_CONFIG = """
c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{proxy_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.DaskGateway.log_level = "WARN"
"""


def start(cmd: list[str], env: dict[str, str], root: Path, log: str) -> subprocess.Popen:
    with open(root / log, "ab") as out:
        return subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)


async def load(
    url: str, tokens: list[str], concurrency: int, total: int, mode: str
) -> tuple[float, float]:
    latencies: list[float] = []
    per_worker = total // concurrency

    async def worker(token: str) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        headers = {"Authorization": f"jupyterhub {token}"}
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(url, headers=headers) as resp:  # prime cache / cookie
                assert resp.status == 200, await resp.text()
            for _ in range(per_worker):
                t0 = time.perf_counter()
                async with session.get(url, headers=headers if mode == "header" else None) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(tokens[i % len(tokens)]) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99) - 1] * 1000


async def cold(url: str, hub, hub_log: Path, n: int = 20) -> tuple[float, float]:
    tokens = [await hub.token_for("alice", scopes=["self", "access:services"]) for _ in range(n)]
    before = (await asyncio.to_thread(hub_log.read_text)).count("GET /hub/api/user")
    times = []
    async with aiohttp.ClientSession() as session:
        for token in tokens:
            t0 = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"jupyterhub {token}"}) as resp:
                assert resp.status == 200, await resp.text()
            times.append(time.perf_counter() - t0)
    await asyncio.sleep(0.5)
    calls = (await asyncio.to_thread(hub_log.read_text)).count("GET /hub/api/user") - before
    return calls / n, statistics.median(times) * 1000


@dataclass
class HubGateways:
    """Both servers as services of one hub; URLs of ``GET /api/v1/clusters/``."""

    hub: Any
    direct: dict[str, str]  # the servers' own API ports
    public: dict[str, str]  # through each server's proxy (Traefik / upstream's proxy)
    tokens: list[str]
    pids: dict[str, int]  # each server's own process; its proxy is a child process

    def processes(self, label: str) -> tuple[psutil.Process, psutil.Process | None]:
        """(service, proxy) processes of ``label``; the proxy is the one child."""
        service = psutil.Process(self.pids[label])
        children = service.children()
        return service, children[0] if len(children) == 1 else None


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return float("nan")
    times = proc.cpu_times()
    return times.user + times.system


@dataclass
class Sample:
    rps: float
    p99_ms: float
    service_us: float  # CPU µs per request in the service process
    proxy_us: float  # ... and in its proxy


async def measure(
    gws: HubGateways, label: str, url: str, concurrency: int, total: int, mode: str
) -> Sample:
    """``load`` with the CPU time the service and its proxy spent on it."""
    service, proxy = gws.processes(label)
    before = cpu_seconds(service), cpu_seconds(proxy)
    rps, p99 = await load(url, gws.tokens, concurrency, total, mode)
    requests = total // concurrency * concurrency + concurrency  # + each client's priming
    service_us = (cpu_seconds(service) - before[0]) / requests * 1e6
    proxy_us = (cpu_seconds(proxy) - before[1]) / requests * 1e6
    return Sample(rps, p99, service_us, proxy_us)


@contextlib.asynccontextmanager
async def hub_gateways(root: Path) -> AsyncIterator[HubGateways]:
    services = [{"name": OURS}, {"name": UPSTREAM}]
    roles = [{"name": "user", "scopes": ["self", "access:services"]}]
    async with run_hub(root, services=services, users=["alice"], roles=roles) as hub:
        base_env = dict(os.environ, JUPYTERHUB_API_URL=hub.api_url)
        our_api, our_public = free_port(), free_port()
        ours = start(
            [
                sys.executable,
                "-m",
                "jhub_gateway.hub_service",
                "--auth",
                "jupyterhub",
                "--api-listen",
                f"127.0.0.1:{our_api}",
                "--address",
                f"127.0.0.1:{our_public}",
                "--data-dir",
                str(root / "ours"),
                "--log-level",
                "WARN",
            ],
            dict(
                base_env,
                JUPYTERHUB_API_TOKEN=hub.service_token(OURS),
                JUPYTERHUB_SERVICE_NAME=OURS,
                JUPYTERHUB_SERVICE_PREFIX=f"/services/{OURS}/",
            ),
            root,
            "ours.log",
        )
        up_api, up_public = free_port(), free_port()
        (root / "upstream.py").write_text(
            UPSTREAM_CONFIG.format(api_port=up_api, proxy_port=up_public)
        )
        upstream = start(
            [sys.executable, "-m", "dask_gateway_server", "-f", str(root / "upstream.py")],
            dict(
                base_env,
                JUPYTERHUB_API_TOKEN=hub.service_token(UPSTREAM),
                JUPYTERHUB_SERVICE_NAME=UPSTREAM,
            ),
            root,
            "upstream.log",
        )
        path = f"/services/{OURS}/api/v1/clusters/"
        gateways = HubGateways(
            hub=hub,
            direct={
                "upstream": f"http://127.0.0.1:{up_api}/api/v1/clusters/",
                "jhub-gateway": f"http://127.0.0.1:{our_api}{path}",
            },
            public={
                "upstream": f"http://127.0.0.1:{up_public}/api/v1/clusters/",
                "jhub-gateway": f"http://127.0.0.1:{our_public}{path}",
            },
            tokens=[
                await hub.token_for("alice", scopes=["self", "access:services"]) for _ in range(4)
            ],
            pids={"upstream": upstream.pid, "jhub-gateway": ours.pid},
        )
        try:
            for url in [*gateways.direct.values(), *gateways.public.values()]:

                async def ready(url=url) -> bool:
                    auth = {"Authorization": f"jupyterhub {gateways.tokens[0]}"}
                    try:
                        async with aiohttp.ClientSession() as s, s.get(url, headers=auth) as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                await until(ready, 60, what=url)
            yield gateways
        finally:
            for proc in (ours, upstream):
                proc.terminate()
                proc.wait(30)


LABELS = ("upstream", "jhub-gateway")
LOADS = ((1, 300), (32, 1600), (128, 2560))  # (concurrent clients, requests)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case")
    parser.add_argument(
        "--where", choices=("public", "direct", "both"), default="both", help="which addresses"
    )
    parser.add_argument("--modes", default="cookie,header", help="comma-separated: cookie, header")
    parser.add_argument("--clients", default="1,32,128", help="comma-separated concurrency levels")
    args = parser.parse_args()
    wheres = ("public", "direct") if args.where == "both" else (args.where,)
    clients = {int(c) for c in args.clients.split(",")}
    root = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    rows = []
    async with hub_gateways(root) as gws:
        for where in wheres:
            urls = getattr(gws, where)
            for mode in args.modes.split(","):
                for conc, total in LOADS:
                    if conc not in clients:
                        continue
                    await load(urls["jhub-gateway"], gws.tokens, conc, conc * 4, mode)  # warm
                    samples: dict[str, list[Sample]] = {label: [] for label in LABELS}
                    for i in range(args.rounds):
                        for label in LABELS if i % 2 == 0 else LABELS[::-1]:
                            samples[label].append(
                                await measure(gws, label, urls[label], conc, total, mode)
                            )
                    rows.append((f"{where}, {mode}, {conc} client(s)", _medians(samples)))
        cold_res = {
            label: await cold(url, gws.hub, gws.hub.log_path) for label, url in gws.direct.items()
        }
    print(
        "| case | upstream req/s | ours req/s | ratio | upstream p99 ms | ours p99 ms "
        "| CPU µs/req upstream service + proxy | ours service + proxy |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, res in rows:
        up, ours = res["upstream"], res["jhub-gateway"]
        print(
            f"| {name} | {up.rps:.0f} | {ours.rps:.0f} | {ours.rps / up.rps:.2f}x "
            f"| {up.p99_ms:.1f} | {ours.p99_ms:.1f} "
            f"| {up.service_us:.0f} + {up.proxy_us:.0f} | {ours.service_us:.0f} + {ours.proxy_us:.0f} |"
        )
    (uc, ul), (oc, ol) = cold_res["upstream"], cold_res["jhub-gateway"]
    print(
        f"| cold token (direct): hub calls per request | {uc:.2f} | {oc:.2f} | "
        f"| median {ul:.1f} ms | median {ol:.1f} ms | | |"
    )


def _medians(samples: dict[str, list[Sample]]) -> dict[str, Sample]:
    return {
        label: Sample(
            *(statistics.median(getattr(x, f) for x in xs) for f in Sample.__dataclass_fields__)
        )
        for label, xs in samples.items()
    }


if __name__ == "__main__":
    asyncio.run(main())
