"""Process control with real OS processes (python -c sleepers and friends)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from jhub_gateway.hub_service.backends.local import processes as P
from jhub_gateway.hub_service.backends.local.processes import ProcessHandle

PY = sys.executable
DEADLINE = 60.0
SLEEPER = "import time; print('ready', flush=True); time.sleep(600)"
IGNORE_INT = (
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(600)"
)
IGNORE_INT_TERM = (
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
)


async def until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    """Not running at all (a zombie still counts as present: nobody reaped it)."""
    try:
        psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    return False


def dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable]:
    handles: list[ProcessHandle] = []

    async def _start(code: str, name: str = "p", env: dict | None = None) -> ProcessHandle:
        h = await P.spawn([PY, "-c", code], env or {}, tmp_path, tmp_path / "logs" / f"{name}.log")
        handles.append(h)
        return h

    yield _start
    for h in handles:
        await P.terminate(h, grace=0.5)
    await until(lambda: all(gone(h.pid) for h in handles), "our children to be reaped")
    zombies = [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


async def ready(h: ProcessHandle) -> None:
    await until(lambda: "ready" in P.tail_log(h.log_path), f"process {h.pid} to be ready")


async def test_spawn_own_session_exact_env_and_sigint_stop(start, tmp_path: Path) -> None:
    code = "import os; print(sorted(set(os.environ) - {'LC_CTYPE'}), flush=True); " + SLEEPER
    h = await start(code, env={"FOO": "bar"})
    assert P.is_alive(h)
    assert os.getsid(h.pid) == h.pid and os.getpgid(h.pid) == h.pid
    assert ProcessHandle.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    await ready(h)
    assert P.tail_log(h.log_path)[0] == "['FOO']"

    t0 = time.monotonic()
    code = await P.terminate(h, grace=30)
    assert time.monotonic() - t0 < 25  # SIGINT alone was enough
    assert code == -signal.SIGINT  # KeyboardInterrupt re-raises the signal
    assert not P.is_alive(h) and gone(h.pid)
    assert await P.terminate(h) == -signal.SIGINT  # idempotent


async def test_escalates_to_sigterm_and_sigkill(start) -> None:
    h_term = await start(IGNORE_INT, "term")
    h_kill = await start(IGNORE_INT_TERM, "kill")
    await ready(h_term)
    await ready(h_kill)
    codes = await asyncio.gather(P.terminate(h_term, grace=1), P.terminate(h_kill, grace=1))
    assert codes == [-signal.SIGTERM, -signal.SIGKILL]
    assert gone(h_term.pid) and gone(h_kill.pid)


async def test_exit_code_log_and_automatic_reaping(start) -> None:
    h = await start("import sys; print('boom: bad config', flush=True); sys.exit(3)")
    # nobody waits: the service's event loop must reap it on its own
    await until(lambda: gone(h.pid), "the exited child to be reaped")
    assert not P.is_alive(h)
    assert await P.wait_exit(h, timeout=5) == 3
    assert await P.exit_watch(h) == 3
    assert P.tail_log(h.log_path) == ["boom: bad config"]


async def test_wait_exit_timeout_and_exit_watch_task(start) -> None:
    h = await start(SLEEPER)
    assert await P.wait_exit(h, timeout=0.2) is None
    watcher = asyncio.create_task(P.exit_watch(h))
    try:
        await ready(h)
        assert not watcher.done()
        os.kill(h.pid, signal.SIGTERM)
        assert await asyncio.wait_for(watcher, DEADLINE) == -signal.SIGTERM
    finally:
        watcher.cancel()


async def test_whole_group_stopped_including_stubborn_grandchild(start) -> None:
    code = (
        "import subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)'])\n"
        "print(g.pid, flush=True); time.sleep(1); print('ready', flush=True); time.sleep(600)\n"
    )
    h = await start(code)
    await ready(h)
    grandchild = int(P.tail_log(h.log_path)[0])
    assert os.getpgid(grandchild) == h.pid
    await P.terminate(h, grace=1)
    await until(lambda: dead(grandchild), "the grandchild to be killed")


async def test_pid_reuse_guard(start) -> None:
    h = await start(SLEEPER)
    await ready(h)
    impostor = ProcessHandle(h.pid, h.create_time - 100.0, h.log_path)
    assert not P.is_alive(impostor)
    assert await P.terminate(impostor, grace=0.1) is None
    assert await asyncio.wait_for(P.exit_watch(impostor), 5) == P.UNKNOWN_EXIT_CODE
    assert P.is_alive(h)  # the real process was never signalled


async def test_readopted_process_that_is_not_our_child(tmp_path: Path) -> None:
    # A double fork: the sleeper's parent exits at once, as after a service restart.
    launcher = (
        "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(600)'], start_new_session=True, "
        "stdout=subprocess.DEVNULL); print(p.pid)"
    )
    proc = await asyncio.create_subprocess_exec(PY, "-c", launcher, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE)
    pid = int(out)
    h = ProcessHandle.from_dict(
        {"pid": pid, "create_time": psutil.Process(pid).create_time(), "log_path": ""}
    )
    assert psutil.Process(pid).ppid() != os.getpid()
    assert P.is_alive(h)
    watcher = asyncio.create_task(P.exit_watch(h))
    try:
        assert await P.terminate(h, grace=5) == P.UNKNOWN_EXIT_CODE
        assert await asyncio.wait_for(watcher, DEADLINE) == P.UNKNOWN_EXIT_CODE
    finally:
        watcher.cancel()
        if not dead(pid):
            os.kill(pid, signal.SIGKILL)
    assert not P.is_alive(h)


async def test_detached_children_keep_running_and_are_polled(start) -> None:
    h = await start(SLEEPER)
    await ready(h)
    P.detach_all()  # what the backend does when the service stops but clusters stay
    assert P.is_alive(h)
    watcher = asyncio.create_task(P.exit_watch(h))
    try:
        await asyncio.sleep(0.1)
        assert not watcher.done()
        assert await P.terminate(h, grace=30) == -signal.SIGINT
        assert await asyncio.wait_for(watcher, DEADLINE) == -signal.SIGINT
    finally:
        watcher.cancel()
    P.forget(h)
    assert not P.is_alive(h)


async def test_spawn_missing_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await P.spawn([str(tmp_path / "no-such-binary")], {}, tmp_path, tmp_path / "x.log")


def test_tail_log_limits(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(10_000)))
    assert P.tail_log(log, lines=3) == ["line 9997", "line 9998", "line 9999"]
    assert len(P.tail_log(log, lines=100_000)) < 10_000  # bounded read
    assert P.tail_log(tmp_path / "missing.log") == []
