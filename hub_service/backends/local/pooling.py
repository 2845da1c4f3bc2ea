"""Pre-started scheduler and worker interpreters for the local backend: start, claim, stop.

Each pooled process is started exactly like a cold one (same sandbox and uid,
same environment, its own directories under ``clusters/``) except that it runs
``jhub_gateway.runtime.pooled_scheduler`` (or ``pooled_worker``) and waits for a
claim on a stdin pipe. A claim first writes the cluster's credentials into the
process's run directory (created exclusively), then sends the cluster's name
and the process's arguments. A pooled process serves one cluster at
most and is never returned to the pool; when the service goes away its pipe
closes and unclaimed processes exit by themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from jhub_gateway.models import Cluster

from ...cluster_config import ClusterConfig
from . import launch, processes, workdirs
from .accounts import Identity
from .pool import Pool, PooledProcess, PoolKey

DIR_PREFIX = "pool-"
#: a key whose process exited unclaimed is not refilled sooner than this
RETRY_AFTER = 30.0
#: shrink checks happen at least this often
CHECK_PERIOD = 30.0

#: (key, run directory, config) -> the whole environment of a pooled process
EnvBuilder = Callable[[PoolKey, Path, ClusterConfig], dict[str, str]]
#: (command, env, identity, run directory) -> the command wrapped in the user's sandbox
Wrapper = Callable[[list[str], dict[str, str], "Identity | None", Path], list[str]]


class ProcessPool:
    def __init__(
        self,
        pool: Pool,
        clusters_dir: Path,
        build_env: EnvBuilder,
        wrap: Wrapper,
        log: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.pool = pool
        self.log = log
        self.clusters_dir = clusters_dir
        self._build_env = build_env
        self._wrap = wrap
        self._configs: dict[PoolKey, ClusterConfig] = {}
        self._failed_at: dict[PoolKey, float] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, keep_referenced: set[str]) -> None:
        """Run the refill loop; remove directories of pooled processes of an earlier run."""
        self._own(asyncio.create_task(self._loop(keep_referenced)))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(self.discard(e) for e in self.pool.drain()))

    def want(self, key: PoolKey, config: ClusterConfig) -> None:
        """Keep processes for ``key`` ready (e.g. the default profile at start)."""
        self._configs[key] = config
        self.pool.want(key, time.time())
        self._wake.set()

    # -- claims ------------------------------------------------------------------------------
    def take(self, key: PoolKey, config: ClusterConfig) -> PooledProcess | None:
        """An idle pooled process for ``key`` (claimed: it leaves the pool), or None."""
        self._configs[key] = config
        entry = self.pool.take(key, time.time())
        self._wake.set()  # refill (or start keeping some) in the background
        if entry is not None and not processes.is_alive(entry.handle):
            self._own(asyncio.create_task(self.discard(entry)))
            return None
        return entry

    async def claim(self, entry: PooledProcess, cluster: Cluster, args: list[str]) -> None:
        """Hand ``cluster`` to the taken ``entry``; ``OSError`` if that fails (then discard it)."""
        await asyncio.to_thread(
            workdirs.write_credentials, entry.rundir, cluster, entry.key.identity
        )
        line = json.dumps({"cluster_name": cluster.name, "args": args}) + "\n"
        processes.write_stdin(entry.handle, line.encode())

    # -- background --------------------------------------------------------------------------
    async def _loop(self, keep_referenced: set[str]) -> None:
        await self._remove_stale(keep_referenced)
        period = min(CHECK_PERIOD, max(self.pool.idle_timeout / 2, 0.5))
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), period)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.time()
            for entry in self.pool.to_stop(now):
                self.log.info(
                    "stopping an unclaimed pooled %s (pid %d)", entry.key.role, entry.handle.pid
                )
                self._own(asyncio.create_task(self.discard(entry)))
            for key in self.pool.to_start():
                if now - self._failed_at.get(key, 0.0) < RETRY_AFTER or key not in self._configs:
                    continue
                self.pool.started(key)
                self._own(asyncio.create_task(self._start_one(key, self._configs[key])))

    async def _start_one(self, key: PoolKey, config: ClusterConfig) -> None:
        workdir = self.clusters_dir / f"{DIR_PREFIX}{secrets.token_hex(8)}"
        rundir = workdir / "run"
        entry: PooledProcess | None = None
        try:
            await asyncio.to_thread(workdirs.prepare_dirs, workdir, rundir, key.identity)
            env = self._build_env(key, rundir, config)
            cmd = self._wrap(launch.pooled_command(key.role), env, key.identity, rundir)
            handle = await processes.spawn(
                cmd, env, rundir, workdir / f"{key.role}.log", stdin_pipe=True
            )
            entry = PooledProcess(key, handle, workdir, rundir, time.time())
            self.log.info("pre-started a %s (pid %d, %r)", key.role, handle.pid, key)
        except OSError as exc:
            self.log.error("could not start a pooled %s: %s", key.role, exc)
            self._failed_at[key] = time.time()
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        finally:
            self.pool.ready(entry, key)
        if entry is not None:
            self._own(asyncio.create_task(self._watch(entry)))

    async def _watch(self, entry: PooledProcess) -> None:
        code = await processes.exit_watch(entry.handle)
        if entry.claimed:
            return  # a cluster's scheduler now: the backend watches it
        if self.pool.remove(entry):
            self.log.warning(
                "a pooled %s exited unclaimed (pid %d, code %d; log %s)",
                entry.key.role,
                entry.handle.pid,
                code,
                entry.handle.log_path,
            )
            self._failed_at[entry.key] = time.time()
            await self.discard(entry)

    async def discard(self, entry: PooledProcess) -> None:
        """End ``entry`` (idle, or taken but not claimed) and remove its directories."""
        await processes.terminate(entry.handle, grace=2.0)
        processes.forget(entry.handle)
        await asyncio.to_thread(shutil.rmtree, entry.workdir, True)

    async def _remove_stale(self, keep: set[str]) -> None:
        def remove() -> None:
            for path in self.clusters_dir.glob(f"{DIR_PREFIX}*"):
                if str(path) not in keep:
                    shutil.rmtree(path, ignore_errors=True)

        await asyncio.to_thread(remove)

    def _own(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
