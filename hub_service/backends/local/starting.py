"""How a local cluster's scheduler and workers start: claimed from a pool of
pre-started processes, else cold.

A base class of ``LocalBackend`` (after the isolation part, whose sandbox both
ways use): the pool is set up here, and both start paths build the same
environment for the same run directory layout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jhub_gateway import tls

from ...cluster_config import ClusterConfig
from ..base import GatewayContext
from . import launch, pool, processes, workdirs
from .accounts import Identity
from .isolating import IsolatingBackend
from .pool import PooledProcess
from .pooling import ProcessPool
from .state import LocalClusterState


class StartingBackend(IsolatingBackend):
    """The start part of the local backend (a base class of ``LocalBackend``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context: GatewayContext | None = None
        self.process_pool: ProcessPool | None = None

    def _start_pool(self, clusters_dir: Path, workdirs_in_use: set[str]) -> None:
        """Start the process pool (unless off); directories of an earlier run's pooled
        processes go, except ``workdirs_in_use`` (clusters' processes that claimed one)."""
        if self.pool_size == 0 or self.pool_max_total == 0:
            return
        sizes = pool.Pool(self.pool_size, self.pool_max_total, self.pool_idle_timeout)
        self.process_pool = ProcessPool(
            sizes, clusters_dir, self._pooled_env, self._wrap_for, self.log
        )
        self.process_pool.start(workdirs_in_use)
        if not self.isolated:
            # every cluster runs as this service's user: one pool serves them all from the start
            config = self.cluster_config_class(parent=self)
            for key in (
                self._pool_key(None, config, "scheduler"),
                self._pool_key(None, config, "worker"),
            ):
                if key is not None:
                    self.process_pool.want(key, config)

    def _pool_key(
        self, identity: Identity | None, config: ClusterConfig, role: str
    ) -> pool.PoolKey | None:
        if self.process_pool is None or (role == "worker" and self.worker_nanny):
            return None  # a nanny starts its worker in a fresh interpreter: nothing to warm
        return pool.pool_key(identity, config.command(role), config.environment)

    async def _claim(
        self, state: LocalClusterState, config: ClusterConfig, role: str, args: list[str]
    ) -> PooledProcess | None:
        """A pre-started process of ``role`` that took ``args`` for the cluster, or None."""
        process_pool = self.process_pool
        key = self._pool_key(state.identity, config, role)
        if process_pool is None or key is None:
            return None
        entry = process_pool.take(key, config)
        if entry is None:
            return None
        try:
            await process_pool.claim(entry, state.cluster, args)
        except OSError as exc:
            self.log.warning("claiming a pooled %s failed, starting cold: %s", role, exc)
            await process_pool.discard(entry)
            return None
        self.log.info(
            "cluster %s claimed the pre-started %s pid %d",
            state.cluster.name,
            role,
            entry.handle.pid,
        )
        return entry

    async def _start_scheduler(
        self, state: LocalClusterState, config: ClusterConfig, cold: bool = False
    ) -> None:
        """A pooled scheduler process claimed for the cluster (unless ``cold``), else a
        cold one; OSError if neither."""
        assert self.context is not None
        cluster = state.cluster
        args = launch.scheduler_args(config, state.host, self.heartbeat_period)
        entry = None if cold else await self._claim(state, config, "scheduler", args)
        if entry is not None:
            state.workdir, state.rundir = str(entry.workdir), str(entry.rundir)
            state.scheduler = entry.handle
            state.claimed_scheduler = True
            cluster.record(
                "SchedulerStarting",
                "ProcessClaimed",
                f"pre-started scheduler pid {entry.handle.pid} took the cluster",
            )
            return
        workdir, rundir = Path(state.workdir), Path(state.rundir)
        await asyncio.to_thread(workdirs.prepare, workdir, rundir, cluster, state.identity)
        env = self._env(state, config)
        cmd = config.command("scheduler") + args
        env = launch.scheduler_env(
            env, self.context.api_url, cluster.name, rundir / workdirs.TOKEN_FILE
        )
        state.scheduler = await processes.spawn(
            self._wrap(cmd, env, state), env, rundir, workdir / "scheduler.log"
        )
        cluster.record(
            "SchedulerStarting", "ProcessStarted", f"scheduler pid {state.scheduler.pid}"
        )

    async def _start_worker(
        self, state: LocalClusterState, config: ClusterConfig, worker_name: str
    ) -> processes.ProcessHandle:
        """A pooled worker claimed for the cluster, else a cold one (OSError if neither).

        A claimed worker keeps its own directory (with a copy of the cluster's TLS
        credentials), listed in ``state.claimed_dirs`` so a stop removes it."""
        cluster = state.cluster
        args = launch.worker_args(
            config, cluster.scheduler_address, worker_name, state.host, self.worker_nanny
        )
        entry = await self._claim(state, config, "worker", args)
        if entry is not None:
            state.claimed_dirs.append(str(entry.workdir))
            return entry.handle
        env = launch.worker_env(config, self._env(state, config), self.worker_nanny)
        return await processes.spawn(
            self._wrap(config.command("worker") + args, env, state),
            env,
            Path(state.rundir),
            Path(state.workdir) / f"{worker_name}.log",
        )

    def _env(self, state: LocalClusterState, config: ClusterConfig) -> dict[str, str]:
        return self._env_for(Path(state.rundir), state.identity, config)

    def _env_for(
        self, rundir: Path, identity: Identity | None, config: ClusterConfig
    ) -> dict[str, str]:
        env = launch.base_env(config, tls.tls_env(*workdirs.tls_paths(rundir)))
        if identity is not None:
            env.update(workdirs.isolated_env(rundir, identity))
        return env

    def _pooled_env(self, key: pool.PoolKey, rundir: Path, config: ClusterConfig) -> dict[str, str]:
        assert self.context is not None
        env = self._env_for(rundir, key.identity, config)
        if key.role == "worker":
            return launch.worker_env(config, env, nanny=False)
        return launch.scheduler_env(env, self.context.api_url, "", rundir / workdirs.TOKEN_FILE)
