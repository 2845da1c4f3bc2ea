"""How a local cluster's scheduler starts: claimed from a pool of pre-started ones, else cold.

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
from .pooling import SchedulerPool
from .state import LocalClusterState


class StartingBackend(IsolatingBackend):
    """The start part of the local backend (a base class of ``LocalBackend``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context: GatewayContext | None = None
        self.scheduler_pool: SchedulerPool | None = None

    def _start_pool(self, clusters_dir: Path, workdirs_in_use: set[str]) -> None:
        """Start the scheduler pool (unless off); directories of an earlier run's pooled
        processes go, except ``workdirs_in_use`` (clusters that claimed one)."""
        if self.pool_size == 0 or self.pool_max_total == 0:
            return
        sizes = pool.Pool(self.pool_size, self.pool_max_total, self.pool_idle_timeout)
        self.scheduler_pool = SchedulerPool(
            sizes, clusters_dir, self._pooled_env, self._wrap_for, self.log
        )
        self.scheduler_pool.start(workdirs_in_use)
        if not self.isolated:
            # every cluster runs as this service's user: one pool serves them all from the start
            config = self.cluster_config_class(parent=self)
            key = pool.pool_key(None, config.command("scheduler"), config.environment)
            if key is not None:
                self.scheduler_pool.want(key, config)

    async def _start_scheduler(self, state: LocalClusterState, config: ClusterConfig) -> None:
        """A pooled scheduler process claimed for the cluster, else a cold one; OSError if neither."""
        assert self.context is not None
        cluster, scheduler_pool = state.cluster, self.scheduler_pool
        key = pool.pool_key(state.identity, config.command("scheduler"), config.environment)
        entry = None
        if scheduler_pool is not None and key is not None:
            entry = scheduler_pool.take(key, config)
        if scheduler_pool is not None and entry is not None:
            args = launch.scheduler_args(config, state.host, self.heartbeat_period)
            try:
                await scheduler_pool.claim(entry, cluster, args)
            except OSError as exc:
                self.log.warning("claiming a pooled scheduler failed, starting cold: %s", exc)
                await scheduler_pool.discard(entry)
            else:
                state.workdir, state.rundir = str(entry.workdir), str(entry.rundir)
                state.scheduler = entry.handle
                self.log.info(
                    "cluster %s claimed the pre-started scheduler pid %d",
                    cluster.name,
                    entry.handle.pid,
                )
                cluster.record(
                    "SchedulerStarting",
                    "ProcessClaimed",
                    f"pre-started scheduler pid {entry.handle.pid} took the cluster",
                )
                return
        workdir, rundir = Path(state.workdir), Path(state.rundir)
        await asyncio.to_thread(workdirs.prepare, workdir, rundir, cluster, state.identity)
        env = self._env(state, config)
        cmd = launch.scheduler_command(config, state.host, self.heartbeat_period)
        env = launch.scheduler_env(
            env, self.context.api_url, cluster.name, rundir / workdirs.TOKEN_FILE
        )
        state.scheduler = await processes.spawn(
            self._wrap(cmd, env, state), env, rundir, workdir / "scheduler.log"
        )
        cluster.record(
            "SchedulerStarting", "ProcessStarted", f"scheduler pid {state.scheduler.pid}"
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

    def _pooled_env(
        self, rundir: Path, identity: Identity | None, config: ClusterConfig
    ) -> dict[str, str]:
        assert self.context is not None
        env = self._env_for(rundir, identity, config)
        return launch.scheduler_env(env, self.context.api_url, "", rundir / workdirs.TOKEN_FILE)
