"""Suite-wide guard: no process started by a test outlives the session.

Every process the tests start (gateways, Traefik, schedulers, workers, hubs,
proxies, kubelet pods) runs in a pytest temporary directory; at the end of the
session none may still be running there.
"""

from __future__ import annotations

import psutil
import pytest


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes(tmp_path_factory):
    root = str(tmp_path_factory.getbasetemp())
    yield
    leftovers = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        try:
            if (proc.info["cwd"] or "").startswith(root):
                leftovers.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        proc.kill()
    assert not alive, (
        f"processes left behind: {[' '.join(p.info['cmdline'] or [])[:120] for p in alive]}"
    )
