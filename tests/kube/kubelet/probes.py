"""Readiness/liveness/startup probes (httpGet, tcpSocket, exec) against a pod IP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp

log = logging.getLogger(__name__)


def resolve_port(port: int | str, container: dict) -> int:
    """A probe or Service targetPort: a number, or a named container port."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"named port {port!r} not found")


async def _http(probe: dict, ip: str, container: dict, timeout: float) -> bool:
    get = probe["httpGet"]
    scheme = get.get("scheme", "HTTP").lower()
    host = get.get("host") or ip
    url = f"{scheme}://{host}:{resolve_port(get['port'], container)}{get.get('path', '/')}"
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
    headers.setdefault("User-Agent", "kube-probe/emulated")
    conn = aiohttp.TCPConnector(ssl=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=conn, timeout=client_timeout) as session:
        async with session.get(url, headers=headers, allow_redirects=False) as resp:
            return 200 <= resp.status < 400


async def _tcp(probe: dict, ip: str, container: dict, timeout: float) -> bool:
    sock = probe["tcpSocket"]
    port = resolve_port(sock["port"], container)
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(sock.get("host") or ip, port), timeout
    )
    writer.close()
    return True


async def _exec(probe: dict, env: dict[str, str], cwd: str, timeout: float) -> bool:
    proc = await asyncio.create_subprocess_exec(
        *probe["exec"]["command"],
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(proc.wait(), timeout) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def probe_once(probe: dict, ip: str, container: dict, env: dict[str, str], cwd: str) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            return await _http(probe, ip, container, timeout)
        if "tcpSocket" in probe:
            return await _tcp(probe, ip, container, timeout)
        if "exec" in probe:
            return await _exec(probe, env, cwd, timeout)
        if "grpc" in probe:
            # No gRPC health client here; a listening port is the closest check.
            sock = {"tcpSocket": {"port": probe["grpc"]["port"]}}
            return await _tcp(sock, ip, container, timeout)
    except (OSError, asyncio.TimeoutError, aiohttp.ClientError, ValueError):
        return False
    return True


async def probe_loop(
    probe: dict,
    run: Callable[[], Awaitable[bool]],
    on_result: Callable[[bool], None],
) -> None:
    """Run a probe on its spec'd schedule and report threshold crossings.

    ``on_result(True)`` fires after successThreshold consecutive successes and
    ``on_result(False)`` after failureThreshold consecutive failures. The first
    probe runs right after ``initialDelaySeconds`` (default 0), then every
    ``periodSeconds`` (default 10), as the real kubelet does.
    """
    period = float(probe.get("periodSeconds", 10))
    success_needed = int(probe.get("successThreshold", 1))
    failure_needed = int(probe.get("failureThreshold", 3))
    await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
    successes = failures = 0
    while True:
        ok = await run()
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if successes == success_needed:
            on_result(True)
        if failures == failure_needed:
            on_result(False)
        await asyncio.sleep(period)
