"""Clusters as local processes: the embedded default for laptops, demos and CI.

The service spawns schedulers (in their own sessions, so they outlive a service
restart) and workers, learns addresses from the scheduler's first heartbeat,
publishes routes through Traefik and only then reports RUNNING. State lives in
SQLite (secrets encrypted), so a restarted service re-adopts running clusters.

When the service runs as root, each hub user's processes run under a uid of
their own in their own PID and mount namespaces (``isolation.py``), and each
cluster gets its own loopback host; heartbeats claiming any other address are
rejected (``addresses.py``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from jhub_gateway import redact, tls
from jhub_gateway.models import Cluster, ClusterStatus, User
from jhub_gateway.names import new_cluster_name

from ...cluster_config import ClusterConfig
from ...errors import InvalidOptions
from ...proxy import ProxyError, TraefikProxy
from ..base import GatewayContext
from . import addresses, deadlines, processes, workdirs
from .starting import StartingBackend
from .state import CLOSING, RUNNING, TIMED_OUT, LocalClusterState, WorkerProc
from .store import ClusterStore, load_or_create_keys

WORKER_FAILURE_LIMIT = 3


class LocalBackend(StartingBackend):
    """Runs schedulers and workers as local processes, isolated per hub user when root."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.states: dict[str, LocalClusterState] = {}
        self._tasks: set[asyncio.Task] = set()
        self._network = addresses.parse_network(self.cluster_network)

    # -- lifecycle -------------------------------------------------------------------------------
    async def setup(self, context: GatewayContext) -> None:
        if self.heartbeat_timeout <= 2 * self.heartbeat_period:
            raise ValueError(
                f"LocalBackend.heartbeat_timeout ({self.heartbeat_timeout:g} s) must exceed twice "
                f"heartbeat_period ({self.heartbeat_period:g} s), or healthy clusters would fail"
            )
        self.context = context
        redact.install()
        data = Path(context.data_dir)
        (data / "clusters").mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._setup_isolation(data)
        keys = load_or_create_keys(
            data, self.encrypt_keys or os.environ.get("JHUB_GATEWAY_ENCRYPT_KEYS")
        )
        self.store = await ClusterStore.open(data / "state.sqlite", keys)
        self.proxy = TraefikProxy(
            parent=self, address=context.public_address, prefix=context.prefix
        )
        await self.proxy.start(context.internal_url, data / "traefik", context.dashboard_auth_url)
        await self._readopt()
        self._own(asyncio.create_task(self._check_loop()))
        in_use = {d for s in self.states.values() for d in s.directories()}
        self._start_pool(data / "clusters", in_use)

    async def cleanup(self) -> None:
        if self.stop_clusters_on_shutdown:
            await asyncio.gather(
                *(
                    self.stop_cluster(n, reason="GatewayShutdown", message="the gateway stopped")
                    for n, s in self.states.items()
                    if s.cluster.status.is_active
                ),
                return_exceptions=True,
            )
        for task in list(self._tasks):
            task.cancel()
        if self.process_pool is not None:
            await self.process_pool.stop()
        for state in self.states.values():
            state.cancel_tasks()
        processes.detach_all()  # clusters outlive us; a restarted service re-adopts them
        if self.proxy is not None:
            await self.proxy.stop()
        if self.store is not None:
            await self.store.close()

    async def health(self) -> dict[str, dict]:
        checks: dict[str, dict] = {}
        if self.proxy is not None:
            checks["proxy"] = await self.proxy.check_health()
        checks["store"] = {"ok": self.store is not None}
        return checks

    # -- starting --------------------------------------------------------------------------------
    async def start_cluster(self, user: User, options: dict, config: ClusterConfig) -> Cluster:
        assert self.context is not None
        name = new_cluster_name()
        cert, key = await asyncio.to_thread(tls.new_keypair, name)
        cluster = Cluster(
            name=name,
            username=user.name,
            options=options,
            config=config.to_dict(),
            token=secrets.token_urlsafe(32),
            tls_cert=cert,
            tls_key=key,
            reason="SchedulerStarting",
            message="starting the scheduler process",
            owner_groups=user.groups,
        )
        cluster.record("PENDING", "Created", f"requested by {user.name}")
        identity = await self._identity(user)
        workdir = self._cold_workdir(name)
        taken = {s.host for s in self.states.values()}
        state = LocalClusterState(
            cluster=cluster,
            workdir=str(workdir),
            rundir=str(workdir / "run"),
            host=addresses.allocate_host(self._network, taken),
            identity=identity,
        )
        redact.register_secret(cluster.token, cluster.tls_key)
        try:
            await self._start_scheduler(state, config)
        except OSError as exc:
            await asyncio.to_thread(shutil.rmtree, state.workdir, True)
            redact.forget_secret(cluster.token, cluster.tls_key)
            self.log.error("could not start the scheduler of cluster %s: %s", name, exc)
            raise InvalidOptions(
                f"could not start the scheduler: {exc.strerror or type(exc).__name__}",
                reason="scheduler_start_failed",
            ) from None
        self.states[name] = state
        self.registry.add(cluster)
        await self._persist(state)
        state.own(asyncio.create_task(self._watch_scheduler(state)))
        return cluster

    # -- heartbeats and workers ------------------------------------------------------------------
    async def on_heartbeat(self, name: str, heartbeat: dict) -> None:
        state = self.states.get(name)
        if state is None or not state.cluster.status.is_active:
            return
        cluster = state.cluster
        problem = addresses.check_heartbeat_addresses(heartbeat, state.host)
        if problem is not None:
            # the scheduler runs the user's code: a wrong address is a forgery or a bug,
            # and either way nothing may be routed to it
            self.log.warning("rejected a heartbeat of cluster %s: %s", name, problem)
            raise InvalidOptions(
                f"heartbeat rejected: {problem}", reason="invalid_heartbeat_address"
            )
        async with state.lock:
            state.last_heartbeat = time.time()
            if cluster.status == ClusterStatus.PENDING and heartbeat.get("scheduler_address"):
                await self._to_running(state, heartbeat)
                # wake the waiting client now, not after the worker and SQLite steps below:
                # a crash before the write re-adopts it PENDING and the next heartbeat redoes this
                self.registry.notify(name)
            if cluster.status != ClusterStatus.RUNNING:
                return
            active = set(heartbeat.get("active_workers", []))
            for worker in state.workers.values():
                if worker.name in active and worker.status != CLOSING:
                    worker.status = RUNNING
            for worker_name in heartbeat.get("closing_workers", []):
                if worker_name in state.workers:
                    state.workers[worker_name].status = CLOSING
            for worker_name in heartbeat.get("closed_workers", []):
                closed = state.workers.pop(worker_name, None)
                if closed is not None:
                    state.own(asyncio.create_task(_end_process(closed.handle, grace=5.0)))
            cluster.target_workers = int(heartbeat.get("count", cluster.target_workers))
            cluster.active_workers = len(active)
            await self._reconcile_workers(state)
            await self._persist(state)
        self.registry.notify(name)

    async def _to_running(self, state: LocalClusterState, heartbeat: dict) -> None:
        cluster = state.cluster
        cluster.scheduler_address = heartbeat["scheduler_address"]
        cluster.dashboard_address = heartbeat.get("dashboard_address") or ""
        cluster.api_address = heartbeat.get("api_address") or ""
        cluster.record(
            "SchedulerReady", "Heartbeat", "the scheduler reported in; publishing routes"
        )
        assert self.proxy is not None
        await self.proxy.set_cluster_routes(
            cluster.name,
            cluster.dashboard_address or None,
            _host_port(cluster.scheduler_address),
            on_written=lambda: cluster.record(
                "SchedulerReady", "RoutesWritten", "routes handed to Traefik; waiting until served"
            ),
        )
        if cluster.transition(ClusterStatus.RUNNING, "Running", "scheduler ready and routed"):
            self.log.info("cluster %s running", cluster.name)

    async def request_workers(self, name: str, count: int) -> None:
        state = self.states.get(name)
        if state is None:
            return
        async with state.lock:
            if (
                state.cluster.status == ClusterStatus.RUNNING
                and count > state.cluster.target_workers
            ):
                state.cluster.target_workers = count
                await self._reconcile_workers(state)
                await self._persist(state)

    async def _reconcile_workers(self, state: LocalClusterState) -> None:
        cluster = state.cluster
        live = state.live_workers()
        missing = cluster.target_workers - len(live)
        if missing > 0:
            config = self.cluster_config(cluster)
            for _ in range(missing):
                worker_name = state.new_worker_name()
                handle = await self._start_worker(state, config, worker_name)
                worker = WorkerProc(worker_name, handle)
                state.workers[worker_name] = worker
                state.own(asyncio.create_task(self._watch_worker(state, worker)))
        elif missing < 0:
            # Only workers that never joined are ours to stop; the scheduler retires joined ones.
            starting = [w for w in live if w.status != RUNNING]
            for worker in starting[:-missing]:
                del state.workers[worker.name]
                state.own(asyncio.create_task(_end_process(worker.handle, grace=2.0)))

    async def _watch_worker(self, state: LocalClusterState, worker: WorkerProc) -> None:
        code = await processes.exit_watch(worker.handle)
        async with state.lock:
            if state.workers.get(worker.name) is not worker or not state.cluster.status.is_active:
                return
            del state.workers[worker.name]
            if worker.status == CLOSING:
                return
            state.cluster.record(
                "WorkerExited", "ProcessExited", f"{worker.name} exited with code {code}"
            )
            if worker.status != RUNNING:
                state.worker_failures += 1
            if state.worker_failures >= WORKER_FAILURE_LIMIT:
                tail = "\n".join(processes.tail_log(worker.handle.log_path, 10))
                state.own(
                    asyncio.create_task(
                        self.stop_cluster(
                            state.cluster.name,
                            reason="WorkerStartFailed",
                            failed=True,
                            message=f"{state.worker_failures} workers failed to start; last log lines:\n{tail}",
                        )
                    )
                )
                return
            await self._reconcile_workers(state)
            await self._persist(state)

    async def _watch_scheduler(self, state: LocalClusterState) -> None:
        assert state.scheduler is not None
        code = await processes.exit_watch(state.scheduler)
        if state.claimed_scheduler and await self._restart_cold(state, code):
            return
        if state.cluster.status.is_active:
            tail = "\n".join(processes.tail_log(state.scheduler.log_path, 20))
            await self.stop_cluster(
                state.cluster.name,
                reason="SchedulerExited",
                failed=True,
                message=f"the scheduler process exited with code {code}; last log lines:\n{tail}",
            )

    def _cold_workdir(self, name: str) -> Path:
        """Where a cluster's own processes run (a claimed pre-started one keeps its own)."""
        assert self.context is not None
        return Path(self.context.data_dir) / "clusters" / name

    async def _restart_cold(self, state: LocalClusterState, code: int) -> bool:
        """A claimed pre-started scheduler died before it reported in (e.g. it was killed
        just before the claim): start the cluster's scheduler cold once instead of failing."""
        assert self.context is not None and state.scheduler is not None
        cluster = state.cluster
        async with state.lock:
            if cluster.status != ClusterStatus.PENDING or state.last_heartbeat:
                return False
            state.claimed_scheduler = False
            processes.forget(state.scheduler)
            state.claimed_dirs.append(state.workdir)
            await asyncio.to_thread(shutil.rmtree, state.rundir, True)  # its credentials
            workdir = self._cold_workdir(cluster.name)
            state.workdir, state.rundir = str(workdir), str(workdir / "run")
            cluster.record(
                "SchedulerStarting",
                "ClaimedProcessExited",
                f"the pre-started scheduler exited with code {code} before reporting in; "
                "starting one cold",
            )
            try:
                await self._start_scheduler(state, self.cluster_config(cluster), cold=True)
            except OSError as exc:
                self.log.error("could not restart the scheduler of %s: %s", cluster.name, exc)
                return False
            await self._persist(state)
        self.registry.notify(cluster.name)
        state.own(asyncio.create_task(self._watch_scheduler(state)))
        return True

    # -- stopping --------------------------------------------------------------------------------
    async def stop_cluster(
        self, name: str, *, reason: str, message: str = "", failed: bool = False
    ) -> None:
        state = self.states.get(name)
        if state is None:
            return
        async with state.lock:  # no worker is started or adopted after this point
            if not state.cluster.status.is_active:
                return  # already stopping or stopped
            state.cluster.transition(ClusterStatus.STOPPING, reason, message)
            handles = [w.handle for w in state.workers.values()]
            state.workers.clear()
        self.registry.notify(name)
        self.log.info("stopping cluster %s: %s", name, reason)
        await self._persist(state)
        state.cancel_tasks()
        await self._finish_stop(state, handles, failed)

    async def _finish_stop(
        self, state: LocalClusterState, handles: list[processes.ProcessHandle], failed: bool
    ) -> None:
        """End every process and route of a STOPPING cluster; always reaches a final state."""
        cluster = state.cluster
        await asyncio.gather(*(processes.terminate(h, grace=3.0) for h in handles))
        if state.scheduler is not None:
            await processes.terminate(state.scheduler, grace=5.0)
        for handle in [*handles, state.scheduler]:
            if handle is not None:
                processes.forget(handle)
        if self.proxy is not None:
            try:
                await self.proxy.remove_cluster_routes(cluster.name)
            except ProxyError:
                # its processes are gone: a stale route only leads nowhere
                self.log.warning("could not remove the routes of cluster %s", cluster.name)
        cluster.active_workers = cluster.target_workers = 0
        # its processes are gone: its credentials need not stay on disk
        await asyncio.to_thread(
            workdirs.remove_credentials, Path(state.workdir), Path(state.rundir)
        )
        for claimed in state.claimed_dirs:  # pre-started processes it claimed: their copies
            await asyncio.to_thread(shutil.rmtree, Path(claimed) / "run", True)
        final = ClusterStatus.FAILED if failed else ClusterStatus.STOPPED
        cluster.transition(final, cluster.reason, cluster.message)
        await self._persist(state)
        self.registry.notify(cluster.name)

    # -- timeouts --------------------------------------------------------------------------------
    async def _check_loop(self) -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(self.check_period)
            now = time.time()
            if now - last_purge > min(
                60.0, max(self.stopped_cluster_max_age / 2, self.check_period)
            ):
                last_purge = now
                try:
                    await self._purge_stopped(now)
                except Exception:  # the timeout checks below must keep running
                    self.log.exception("purging stopped clusters failed")
            for state in list(self.states.values()):
                try:
                    await self._check_cluster(state, now)
                except Exception:  # one bad cluster must not stop checks of the others
                    self.log.exception("timeout check failed for cluster %s", state.cluster.name)

    async def _purge_stopped(self, now: float) -> None:
        horizon_ms = (now - self.stopped_cluster_max_age) * 1000
        for name, state in list(self.states.items()):
            stopped = state.cluster.stop_time
            if state.cluster.status.is_terminal and stopped is not None and stopped < horizon_ms:
                # files first: once the cluster answers 404, nothing of it is left on disk
                for directory in state.directories():
                    await asyncio.to_thread(shutil.rmtree, directory, True)
                del self.states[name]
                redact.forget_secret(state.cluster.token, state.cluster.tls_key)
                self._configs.pop(name, None)
                self.registry.remove(name)
        if self.store is not None:
            await self.store.purge_terminal(int(self.stopped_cluster_max_age * 1000))

    def _stop_soon(self, name: str, *, reason: str, message: str, failed: bool = False) -> None:
        # in its own task: a slow stop must not hold up the checks of other clusters
        self._own(
            asyncio.create_task(
                self.stop_cluster(name, reason=reason, message=message, failed=failed)
            )
        )

    async def _check_cluster(self, state: LocalClusterState, now: float) -> None:
        cluster = state.cluster
        if not cluster.status.is_active:
            return
        config = self.cluster_config(cluster)
        scheduler = state.scheduler
        stop = deadlines.cluster_deadline(
            cluster,
            config,
            now=now,
            last_heartbeat=state.last_heartbeat,
            heartbeat_timeout=self.heartbeat_timeout,
            scheduler_log_tail=lambda: (
                "\n".join(processes.tail_log(scheduler.log_path, 20)) if scheduler else ""
            ),
        )
        if stop is not None:
            self._stop_soon(
                cluster.name, reason=stop.reason, message=stop.message, failed=stop.failed
            )
            return
        for worker in deadlines.late_workers(state.workers.values(), config, now):
            worker.status = TIMED_OUT
            cluster.record(
                "WorkerStartTimeout", "Timeout", f"{worker.name} did not connect in time"
            )
            # its watcher replaces it
            self._own(asyncio.create_task(processes.terminate(worker.handle, grace=1.0)))

    # -- persistence and re-adoption -------------------------------------------------------------
    async def _persist(self, state: LocalClusterState) -> None:
        if self.store is not None:
            await self.store.save(state.cluster, state.to_dict())

    async def _readopt(self) -> None:
        assert self.store is not None and self.proxy is not None
        routes: dict[str, tuple[str | None, str]] = {}
        for cluster, data in await self.store.load_terminal():  # still listed until purged
            self.states[cluster.name] = LocalClusterState.from_dict(cluster, data)
            redact.register_secret(cluster.token, cluster.tls_key)
            self.registry.add(cluster)
        for cluster, data in await self.store.load_active():
            state = LocalClusterState.from_dict(cluster, data)
            redact.register_secret(cluster.token, cluster.tls_key)
            self.states[cluster.name] = state
            self.registry.add(cluster)
            state.workers = {n: w for n, w in state.workers.items() if processes.is_alive(w.handle)}
            if cluster.status == ClusterStatus.STOPPING:  # finish the interrupted stop
                handles = [w.handle for w in state.workers.values()]
                state.workers.clear()
                await self._finish_stop(state, handles, failed=False)
                continue
            if state.scheduler is None or not processes.is_alive(state.scheduler):
                await self.stop_cluster(
                    cluster.name,
                    reason="SchedulerLost",
                    failed=True,
                    message="the scheduler ended while the gateway was down",
                )
                continue
            state.last_heartbeat = time.time()
            state.own(asyncio.create_task(self._watch_scheduler(state)))
            for worker in state.workers.values():
                state.own(asyncio.create_task(self._watch_worker(state, worker)))
            if cluster.status == ClusterStatus.RUNNING:
                routes[cluster.name] = (
                    cluster.dashboard_address or None,
                    _host_port(cluster.scheduler_address),
                )
            cluster.record(
                "Readopted", "GatewayRestarted", "the gateway restarted and took the cluster back"
            )
            self.log.info("re-adopted cluster %s", cluster.name)
        await self.proxy.sync_routes(routes)

    def _own(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _end_process(handle: processes.ProcessHandle, grace: float) -> None:
    await processes.terminate(handle, grace=grace)
    processes.forget(handle)


def _host_port(address: str) -> str:
    """``tls://127.0.0.1:4242`` -> ``127.0.0.1:4242``."""
    return address.split("://", 1)[-1]
