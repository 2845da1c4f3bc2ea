"""One container of a pod: a local process group, restarts and probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from .images import ImagePullError
from .podenv import ConfigError
from .probes import probe_loop, probe_once

log = logging.getLogger(__name__)

# Real kubelets back off 10 s doubling to 5 min; tests cannot wait that long, so
# restarts here back off 1 s doubling to 10 s (not part of any spec field).
BACKOFF_START = 1.0
BACKOFF_MAX = 10.0


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class PodContext(Protocol):
    pod_ip: str
    grace: float

    def changed(self) -> None: ...

    def log_file(self, container: str) -> Path: ...

    def process_spec(
        self, container: dict
    ) -> Awaitable[tuple[list[str], dict[str, str], str, Callable[[str], str]]]: ...


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ContainerRunner:
    """Runs one container spec until it is done for good or stopped."""

    def __init__(self, ctx: PodContext, spec: dict, restart_policy: str) -> None:
        self.ctx = ctx
        self.spec = spec
        self.name: str = spec["name"]
        self.restart_policy = restart_policy
        self.state: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.ready = False
        self.started = False
        self.ever_ran = False
        self.done = False
        self.restart_count = 0
        self.exit_code: int | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self._env: dict[str, str] = {}
        self._cwd = "/"
        self._rewrite: Callable[[str], str] = str

    # -- status ---------------------------------------------------------------
    def status(self) -> dict:
        pid = self.proc.pid if self.proc else None
        out = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if pid is not None:
            out["containerID"] = f"emulated://{pid}"
        return out

    def _set(self, **fields: object) -> None:
        for k, v in fields.items():
            setattr(self, k, v)
        self.ctx.changed()

    # -- lifecycle ------------------------------------------------------------
    async def run(self) -> int:
        """Run (and restart per policy); return the final exit code."""
        backoff = BACKOFF_START
        pulls = 0
        while not self.stopping:
            try:
                argv, self._env, self._cwd, self._rewrite = await self.ctx.process_spec(self.spec)
            except ImagePullError as exc:
                log.info("container %s image not available: %s", self.name, exc)
                pulls += 1
                why = "ErrImagePull" if pulls == 1 else "ImagePullBackOff"
                self._set(state={"waiting": {"reason": why, "message": str(exc)}})
                await asyncio.sleep(min(backoff * pulls, BACKOFF_MAX))
                continue
            except ConfigError as exc:
                log.info("container %s not startable yet: %s", self.name, exc)
                reason = {"reason": "CreateContainerConfigError", "message": str(exc)}
                self._set(state={"waiting": reason})
                await asyncio.sleep(1)
                continue
            code = await self._run_once(argv)
            if self.stopping:
                break
            if not self._should_restart(code):
                self._set(done=True)
                break
            self._set(
                last_state=self.state,
                state={"waiting": {"reason": "CrashLoopBackOff"}},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            if self.stopping:
                break
            self.restart_count += 1
        return self.exit_code if self.exit_code is not None else 0

    def _should_restart(self, code: int) -> bool:
        if self.restart_policy == "Always":
            return True
        return self.restart_policy == "OnFailure" and code != 0

    async def _run_once(self, argv: list[str]) -> int:
        started_at = now_iso()
        logfile = await asyncio.to_thread(open, self.ctx.log_file(self.name), "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                env=self._env,
                cwd=self._cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # own process group: deletion kills children too
            )
        except OSError as exc:
            log.warning("container %s failed to start: %s", self.name, exc)
            term = {"exitCode": 128, "reason": "StartError", "message": str(exc)}
            self._set(state={"terminated": {**term, "finishedAt": now_iso()}}, exit_code=128)
            return 128
        finally:
            logfile.close()
        log.info("container %s started pid %d", self.name, self.proc.pid)
        self._set(
            state={"running": {"startedAt": started_at}},
            ever_ran=True,
            started=not self.spec.get("startupProbe"),
            ready=False,
        )
        probes = asyncio.create_task(self._probes())
        try:
            rc = await self.proc.wait()
        finally:
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
        _kill_group(self.proc.pid, signal.SIGKILL)  # stray children of the main process
        code = rc if rc >= 0 else 128 - rc
        term = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started_at,
            "finishedAt": now_iso(),
            "containerID": f"emulated://{self.proc.pid}",
        }
        self._set(state={"terminated": term}, exit_code=code, ready=False, started=False)
        log.info("container %s exited with %d", self.name, code)
        return code

    async def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
        self.stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except asyncio.TimeoutError:
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    def kill_now(self) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            _kill_group(self.proc.pid, signal.SIGKILL)

    # -- probes ---------------------------------------------------------------
    def _prober(self, probe: dict) -> Callable[[], Awaitable[bool]]:
        if "exec" in probe:
            # exec commands name paths inside the container: map mounts like args
            command = [self._rewrite(w) for w in probe["exec"].get("command", [])]
            probe = {**probe, "exec": {"command": command}}
        return lambda: probe_once(probe, self.ctx.pod_ip, self.spec, self._env, self._cwd)

    async def _probes(self) -> None:
        startup = self.spec.get("startupProbe")
        if startup:
            passed = asyncio.Event()

            def on_startup(ok: bool) -> None:
                if ok:
                    passed.set()
                else:
                    self._fail_liveness("startup")

            task = asyncio.create_task(probe_loop(startup, self._prober(startup), on_startup))
            try:
                await passed.wait()
            finally:
                # awaited: a probe mid-exec must have killed its command before we go on
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._set(started=True)
        tasks = []
        readiness = self.spec.get("readinessProbe")
        if readiness:
            tasks.append(probe_loop(readiness, self._prober(readiness), self._on_readiness))
        else:
            self._set(ready=True)
        liveness = self.spec.get("livenessProbe")
        if liveness:
            tasks.append(probe_loop(liveness, self._prober(liveness), self._on_liveness))
        if tasks:
            children = [asyncio.create_task(t) for t in tasks]
            try:
                await asyncio.gather(*children)
            finally:
                # gather leaves the others running when one fails: none may outlive us
                for child in children:
                    child.cancel()
                await asyncio.gather(*children, return_exceptions=True)

    def _on_readiness(self, ok: bool) -> None:
        self._set(ready=ok)

    def _on_liveness(self, ok: bool) -> None:
        if not ok:
            self._fail_liveness("liveness")

    def _fail_liveness(self, kind: str) -> None:
        log.info("container %s failed its %s probe, killing it", self.name, kind)
        if self.proc is not None and self.proc.returncode is None:
            pid = self.proc.pid
            _kill_group(pid, signal.SIGTERM)
            asyncio.get_running_loop().call_later(self.ctx.grace, _kill_group, pid, signal.SIGKILL)
