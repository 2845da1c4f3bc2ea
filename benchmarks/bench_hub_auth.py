"""JupyterHub auth: jhub-gateway vs upstream dask-gateway-server against one real hub.

Both servers run as external services of the same hub and are hit directly (no
proxy in between) with ``GET /api/v1/clusters/``:

- warm, cookie: the upstream client's pattern (token once, then the session cookie);
- warm, token header: every request carries ``Authorization: jupyterhub <token>``
  (our client's pattern);
- cold: a fresh token per request; counts hub ``/hub/api/user`` calls per request.

Throughput (requests/s) and p99 latency at 1 and 32 concurrent clients. ``run.py``
reuses ``hub_gateways`` and ``load`` for its API rows, through the public addresses.
Run: ``.venv/bin/python benchmarks/bench_hub_auth.py``. Not a test: prints a table.
"""

from __future__ import annotations

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


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    async with hub_gateways(root) as gws:
        urls, tokens, hub = gws.direct, gws.tokens, gws.hub
        rows = []
        for mode in ("cookie", "header"):
            for conc, total in ((1, 300), (32, 1600)):
                res = {
                    label: await load(url, tokens, conc, total, mode) for label, url in urls.items()
                }
                rows.append((f"warm, {mode}, {conc} client(s)", res))
        cold_res = {label: await cold(url, hub, hub.log_path) for label, url in urls.items()}
    print("| case | upstream req/s | ours req/s | ratio | upstream p99 ms | ours p99 ms |")
    print("|---|---|---|---|---|---|")
    for name, res in rows:
        (ut, up99), (ot, op99) = res["upstream"], res["jhub-gateway"]
        print(f"| {name} | {ut:.0f} | {ot:.0f} | {ot / ut:.2f}x | {up99:.1f} | {op99:.1f} |")
    (uc, ul), (oc, ol) = cold_res["upstream"], cold_res["jhub-gateway"]
    print(
        f"| cold token: hub calls per request | {uc:.2f} | {oc:.2f} | | median {ul:.1f} ms | median {ol:.1f} ms |"
    )


if __name__ == "__main__":
    asyncio.run(main())
