"""All clusters with 500 clusters: time to first render in Chromium, bytes, API view time.

The service's real Tornado app and ClusterService run in this process; the backend's
registry is filled with 500 RUNNING clusters of 50 users (no processes: this measures
the pages, not cluster start-up). An admin-only authenticator stands in for the hub.

Run: ``.venv/bin/python benchmarks/bench_pages.py [--clusters 500]``. Not a test:
prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from tornado import httpserver, netutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jhub_gateway.hub_service.auth.base import Authenticator  # noqa: E402
from jhub_gateway.hub_service.backends.base import Backend  # noqa: E402
from jhub_gateway.hub_service.clusters import ClusterService  # noqa: E402
from jhub_gateway.hub_service.quotas import UserQuotas  # noqa: E402
from jhub_gateway.hub_service.session import SessionCookies  # noqa: E402
from jhub_gateway.hub_service.web import make_web_app  # noqa: E402
from jhub_gateway.models import Cluster, ClusterStatus, User  # noqa: E402
from jhub_gateway.options import Options  # noqa: E402

PREFIX = "/services/dask-gateway/"


class AnyoneIsAdmin(Authenticator):
    async def authenticate(self, handler):  # type: ignore[no-untyped-def]
        return User(name="admin", admin=True)


def fill(backend: Backend, clusters: int, users: int) -> None:
    for i in range(clusters):
        c = Cluster(name=f"{i:032x}", username=f"user{i % users:03d}")
        c.transition(ClusterStatus.RUNNING, "Running", "scheduler ready and routed")
        c.dashboard_address = "http://127.0.0.1:1"
        c.target_workers = c.active_workers = i % 4
        c.config = {"worker_cores": 1 + i % 2, "worker_memory": "2 G"}
        backend.registry.add(c)


async def main(clusters: int) -> None:
    from playwright.async_api import async_playwright

    backend = Backend()
    fill(backend, clusters, max(1, clusters // 10))
    service = ClusterService(backend, Options(), UserQuotas())
    for cluster in backend.registry.all():
        service.footprint(cluster)  # the service builds each config once, at create

    async def health() -> dict:
        return {}

    app = make_web_app(
        cluster_service=service,
        health_checks=health,
        authenticator=AnyoneIsAdmin(),
        sessions=SessionCookies(b"x" * 32, 3600),
        prefix=PREFIX,
        max_body_bytes=1 << 20,
    )
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}{PREFIX.rstrip('/')}"
    rows: list[tuple[str, str]] = []
    try:
        async with aiohttp.ClientSession() as s:
            times = []
            for page in range(1, 21):
                start = time.perf_counter()
                async with s.get(f"{base}/api/v1/admin/overview?page={page % 10 + 1}") as r:
                    body = await r.read()
                times.append(time.perf_counter() - start)
            rows.append(
                (
                    "overview API, one page (median of 20)",
                    f"{1000 * statistics.median(times):.1f} ms",
                )
            )
            rows.append(("overview API body", f"{len(body) / 1024:.1f} KiB"))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = await browser.new_page()
            sizes: dict[str, int] = {}

            async def on_response(response):  # type: ignore[no-untyped-def]
                if "/events" not in response.url:
                    sizes[response.url] = len(await response.body())

            page.on("response", on_response)
            firsts, blank = [], []
            for attempt in range(5):
                start = time.perf_counter()
                await page.goto("data:text/html,<p>baseline</p>")
                blank.append(time.perf_counter() - start)
                await page.goto(f"{base}/admin")
                await page.wait_for_selector(
                    f"#all-clusters tbody tr:nth-child({min(50, clusters)})"
                )
                # since the navigation started, in the page's own clock
                firsts.append(await page.evaluate("performance.now()") / 1000)
                await page.wait_for_selector('#live[data-state="live"]')
                if attempt == 0:
                    first_bytes = sum(sizes.values())
                    count = len(sizes)
            await browser.close()
        rows.append(
            (
                "All clusters: first render (median of 5)",
                f"{1000 * statistics.median(firsts):.0f} ms",
            )
        )
        rows.append(("All clusters: bytes of the first load", f"{first_bytes / 1024:.1f} KiB"))
        rows.append(
            (
                "  (a blank data: page on this machine now)",
                f"{1000 * statistics.median(blank):.0f} ms",
            )
        )
        rows.append(("requests of the first load (then one event stream)", str(count)))
    finally:
        server.stop()
    width = max(len(k) for k, _ in rows)
    print(f"{clusters} clusters, load average {os.getloadavg()[0]:.1f}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=500)
    asyncio.run(main(parser.parse_args().clusters))
