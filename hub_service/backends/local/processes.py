"""Scheduler and worker OS processes that outlive a restart of the service.

Processes are started with ``subprocess.Popen`` in their own session, not with
``asyncio.create_subprocess_exec``: asyncio's subprocess transport kills a still
running child when it is closed or garbage-collected (e.g. when the service's
event loop shuts down), which would take every cluster down with the service.

Our own children are reaped as soon as they exit through a pidfd registered with
the event loop (no thread, no polling), so they never linger as zombies. After a
restart the service holds only ``ProcessHandle`` records; those processes are no
longer its children and are watched by polling. ``create_time`` in the handle
guards against pid reuse: a pid whose start time differs is someone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

# Returned as the exit code of a process that was not started by this service
# process (re-adopted after a restart): its real status is only known to its parent.
UNKNOWN_EXIT_CODE = -1000
POLL_INTERVAL = 0.5
_CREATE_TIME_TOLERANCE = 0.05
_TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class ProcessHandle:
    """What must be persisted to find a process again after a service restart."""

    pid: int
    create_time: float
    log_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessHandle:
        return cls(int(data["pid"]), float(data["create_time"]), str(data["log_path"]))


class _Child:
    """A process this service process started: we own its reaping."""

    def __init__(self, popen: subprocess.Popen, create_time: float) -> None:
        self.popen = popen
        self.create_time = create_time
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pidfd: int | None = None
        self.exited: asyncio.Future[int] | None = None

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            pidfd = os.pidfd_open(self.popen.pid)
        except (AttributeError, OSError):
            return  # no pidfd support: is_alive()/exit_watch() reap by polling
        self.loop, self.pidfd, self.exited = loop, pidfd, loop.create_future()
        loop.add_reader(pidfd, self._on_exit)

    def _on_exit(self) -> None:
        code = self.popen.poll()
        if code is None:
            return  # spurious wake-up
        self.unwatch()
        log.debug("process %d exited with code %d", self.popen.pid, code)

    def unwatch(self) -> None:
        if self.pidfd is None:
            return
        assert self.loop is not None and self.exited is not None
        if not self.loop.is_closed():
            self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        code = self.popen.returncode
        if not self.exited.done() and not self.loop.is_closed():
            if code is not None:
                self.exited.set_result(code)
            else:
                self.exited.cancel()


# pid -> child; a reused pid overwrites its dead predecessor's entry.
_children: dict[int, _Child] = {}


def _child(handle: ProcessHandle) -> _Child | None:
    child = _children.get(handle.pid)
    if child is None or abs(child.create_time - handle.create_time) > _CREATE_TIME_TOLERANCE:
        return None
    return child


async def spawn(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, stdin_pipe: bool = False
) -> ProcessHandle:
    """Start ``cmd`` in a new session, output appended to ``log_path``.

    ``env`` is the child's whole environment. With ``stdin_pipe`` its stdin is a
    pipe from this process (see ``write_stdin``), which the child sees closed when
    this process exits. Raises ``OSError`` (e.g. ``FileNotFoundError``) if the
    command cannot be started.
    """
    loop = asyncio.get_running_loop()
    log_path = Path(log_path)
    popen = _start(cmd, env, cwd, log_path, stdin_pipe)
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:  # pragma: no cover - we have not reaped it, so it exists
        create_time = time.time()
    child = _Child(popen, create_time)
    _children[popen.pid] = child
    child.watch(loop)
    log.info("started process %d: %s", popen.pid, cmd[0] if cmd else "")
    return ProcessHandle(popen.pid, create_time, str(log_path))


def _start(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, stdin_pipe: bool
) -> subprocess.Popen:
    # Synchronous on purpose: opening a local file and fork/exec are what asyncio
    # itself does inline, and not awaiting in between means a cancelled caller can
    # never orphan a half-started process.
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def write_stdin(handle: ProcessHandle, data: bytes) -> None:
    """Write ``data`` to the stdin pipe of our child ``handle`` and close it.

    For small messages (well under the pipe's 64 KiB buffer) into a pipe nobody
    else writes: the write completes at once, so it is safe on the event loop.
    Raises ``OSError`` when the child is gone or has no such pipe.
    """
    child = _child(handle)
    if child is None or child.popen.stdin is None:
        raise OSError(f"process {handle.pid} has no stdin pipe from this service")
    pipe, child.popen.stdin = child.popen.stdin, None
    try:
        pipe.write(data)
        pipe.flush()
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def is_alive(handle: ProcessHandle) -> bool:
    """True if the process of ``handle`` still runs (not a zombie, not a reused pid)."""
    child = _child(handle)
    if child is not None:
        # Reaps it if it has exited, so it cannot stay a zombie.
        return child.popen.poll() is None
    try:
        proc = psutil.Process(handle.pid)
        if abs(proc.create_time() - handle.create_time) > _CREATE_TIME_TOLERANCE:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


async def exit_watch(handle: ProcessHandle) -> int:
    """Resolve with the exit code when the process exits (usable as a task).

    For a re-adopted process that is not our child the code is ``UNKNOWN_EXIT_CODE``.
    """
    child = _child(handle)
    if child is not None:
        fut = child.exited
        if fut is not None and child.loop is asyncio.get_running_loop():
            try:
                # shield: one waiter giving up must not cancel the shared future.
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                if not fut.cancelled():
                    raise  # our caller was cancelled
                # else the watcher was detached: fall back to polling below
        # Started under another event loop, or no pidfd: poll (poll() also reaps).
        while True:
            if (code := child.popen.poll()) is not None:
                return code
            await asyncio.sleep(POLL_INTERVAL)
    # Not our child: nothing can notify us, so poll.
    while True:
        if not is_alive(handle):
            return UNKNOWN_EXIT_CODE
        await asyncio.sleep(POLL_INTERVAL)


async def wait_exit(handle: ProcessHandle, timeout: float) -> int | None:
    """The exit code if the process exits within ``timeout`` seconds, else None."""
    try:
        return await asyncio.wait_for(exit_watch(handle), timeout)
    except asyncio.TimeoutError:  # not the builtin on Python 3.10
        return None


async def terminate(handle: ProcessHandle, grace: float = 5.0) -> int | None:
    """Stop the process and its whole process group: SIGINT, SIGTERM, then SIGKILL.

    Each signal gets ``grace`` seconds. A no-op if the process is already gone (or
    the pid now belongs to another process). Returns the exit code if known.
    """
    if not is_alive(handle):
        return _reaped_code(handle)
    try:
        leftovers = psutil.Process(handle.pid).children(recursive=True)
    except psutil.Error:
        leftovers = []
    code: int | None = None
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if not is_alive(handle):
            break
        log.debug("sending %s to process group %d", sig.name, handle.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, sig)
        code = await wait_exit(handle, wait)
        if code is not None:
            break
    else:
        log.warning("process %d survived SIGKILL", handle.pid)
    # Descendants that left the group or outlived the leader; the snapshot's
    # create_time check means a reused pid is never signalled.
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            if proc.is_running():
                proc.kill()
    return code if code is not None else _reaped_code(handle)


def _reaped_code(handle: ProcessHandle) -> int | None:
    child = _child(handle)
    if child is None:
        return None
    return child.popen.poll()


def forget(handle: ProcessHandle) -> None:
    """Stop tracking the process (it keeps running); e.g. when its cluster is dropped."""
    child = _children.pop(handle.pid, None)
    if child is not None:
        child.unwatch()
        if child.popen.stdin is not None:
            with contextlib.suppress(OSError):
                child.popen.stdin.close()


def detach_all() -> None:
    """Release every pidfd watcher, leaving the processes running.

    Call from the event loop on service shutdown when clusters are meant to survive
    it; after this the processes are watched by polling like re-adopted ones.
    """
    for child in _children.values():
        child.unwatch()


def tail_log(path: str | Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log file (reads at most 16 KiB); [] if missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            data = f.read(_TAIL_BYTES)
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    if size > _TAIL_BYTES and text:
        text = text[1:]  # the first line is probably cut
    return text[-lines:] if lines > 0 else []
