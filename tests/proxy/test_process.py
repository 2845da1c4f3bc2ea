"""Traefik's process: dies with a SIGKILLed parent, failures at start, trait checks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import psutil
import pytest
from traitlets import TraitError

from jhub_gateway.hub_service.proxy import ProxyError, TraefikProxy

PARENT = """
import asyncio, sys
from pathlib import Path
from jhub_gateway.hub_service.proxy import TraefikProxy

async def main():
    proxy = TraefikProxy(address="127.0.0.1:0")
    await proxy.start("http://127.0.0.1:9", Path(sys.argv[1]), None)
    print(proxy.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_traefik_dies_with_a_sigkilled_parent(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = parent.stdout.readline()  # blocks until Traefik is up (or the parent died)
        assert line.strip().isdigit(), f"parent failed: rc={parent.poll()}"
        traefik = psutil.Process(int(line))
        assert "traefik" in traefik.name()
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    deadline = time.monotonic() + 30
    while traefik.is_running() and traefik.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "traefik outlived its parent"
        time.sleep(0.05)


async def test_a_busy_port_fails_start_with_proxy_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proxy = TraefikProxy(address=f"127.0.0.1:{port}")
        with pytest.raises(ProxyError, match="exited"):
            await proxy.start("http://127.0.0.1:9", tmp_path, None)
        await proxy.stop()
    assert proxy.pid is None
    assert (tmp_path / "traefik.log").read_text()  # Traefik said why


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("address", "8000"),
        ("address", "host:99999"),
        ("tcp_address", "nope"),
        ("internal_address", "0.0.0.0:9000"),
        ("prefix", "no-slash"),
        ("traefik_path", "/nonexistent/traefik"),
        ("log_level", "LOUD"),
        ("restart_delay", -1.0),
    ],
)
def test_bad_settings_are_refused(trait, value):
    with pytest.raises(TraitError):
        TraefikProxy(**{trait: value})


def test_defaults():
    proxy = TraefikProxy()
    assert proxy.tcp_address is None and proxy.prefix == "/"
    assert proxy.internal_address.startswith("127.0.0.1:")
    assert TraefikProxy(traefik_path=sys.executable).traefik_path == sys.executable
