"""Suite-wide guards: one import path per module, and nothing outlives its test.

- The subpackages are importable only as ``jhub_gateway.hub_service``,
  ``jhub_gateway.controller`` and ``jhub_gateway.client``: the repo root is on
  ``sys.path`` in tests, so without this guard ``import controller`` would load a
  second copy with its own classes.
- Every process the tests start runs in a pytest temporary directory; at the end
  of the session none may still run there. A leftover is reported with the test
  that was running when it was started.
- No asyncio task outlives the loop it ran on (``tests/task_guard.py``).
"""

from __future__ import annotations

import importlib.abc
import sys
import time

import psutil
import pytest

pytest_plugins = ["tests.task_guard"]

_SECOND_NAMES = {"controller", "client", "hub_service"}


class _RefuseSecondImportPath(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        top = fullname.partition(".")[0]
        if top in _SECOND_NAMES:
            raise ImportError(
                f"import jhub_gateway.{fullname}, not {fullname}: one name per module"
            )
        return None


sys.meta_path.insert(0, _RefuseSecondImportPath())

_test_windows: list[tuple[float, float, str]] = []  # (start, end, nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # type: ignore[no-untyped-def]
    start = time.time()
    yield
    _test_windows.append((start, time.time(), item.nodeid))


def _started_during(created: float) -> str:
    for start, end, nodeid in _test_windows:
        if start - 1 <= created <= end + 1:
            return nodeid
    return "a fixture outside any test"


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes(tmp_path_factory):
    root = str(tmp_path_factory.getbasetemp())
    yield
    leftovers = []
    for proc in psutil.process_iter(["cwd", "cmdline", "create_time"]):
        try:
            if (proc.info["cwd"] or "").startswith(root):
                leftovers.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        proc.kill()
    assert not alive, "processes left behind: " + "; ".join(
        f"{' '.join(p.info['cmdline'] or [])[:120]} (started during {_started_during(p.info['create_time'])})"
        for p in alive
    )
