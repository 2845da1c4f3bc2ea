"""One pod on the emulated node: binding, volumes, containers and its status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import images
from .api import JSON_PATCH, ApiError, RawApi
from .container import ContainerRunner, now_iso
from .podenv import (
    ConfigError,
    Resolver,
    build_env,
    expand_vars,
    rewrite_hosts,
    rewrite_path,
)
from .volumes import materialise, mounts_for

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger(__name__)

MAX_GRACE = 10.0


def _grace(pod: dict) -> float:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return min(float(grace), MAX_GRACE)


async def bind(api: RawApi, pod: dict, node_name: str) -> bool:
    """Schedule ``pod`` onto ``node_name`` (no-op if it has a node); False if that failed."""
    if pod["spec"].get("nodeName"):
        return True
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    path = f"/api/v1/namespaces/{ns}/pods/{name}"
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }
    try:
        await api.request("POST", path + "/binding", body=body)
        return True
    except ApiError as exc:
        if exc.status not in (404, 405):
            log.warning("binding pod %s/%s failed: %s", ns, name, exc)
            return False
    # No binding subresource: fall back to setting spec.nodeName directly.
    patch = [{"op": "add", "path": "/spec/nodeName", "value": node_name}]
    try:
        await api.request("PATCH", path, body=patch, content_type=JSON_PATCH)
        return True
    except ApiError as exc:
        log.warning("scheduling pod %s/%s failed: %s", ns, name, exc)
        return False


class PodWorker:
    """Drives one pod from binding to deletion; owns its processes and tasks."""

    def __init__(self, kubelet: Kubelet, pod: dict) -> None:
        meta = pod["metadata"]
        self.k = kubelet
        self.pod = pod
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", "")
        self.path = f"/api/v1/namespaces/{self.ns}/pods/{self.name}"
        self.pod_ip = ""
        self.grace = _grace(pod)
        self.dir = kubelet.workdir / "pods" / f"{self.ns}_{self.name}_{self.uid[:8]}"
        self.dirs: dict[str, Path] = {}
        policy = pod["spec"].get("restartPolicy", "Always")
        init_policy = "Never" if policy == "Never" else "OnFailure"
        self.init_runners = [
            ContainerRunner(self, c, init_policy) for c in pod["spec"].get("initContainers", [])
        ]
        self.runners = [ContainerRunner(self, c, policy) for c in pod["spec"]["containers"]]
        self.scheduled = False
        self.initialized = False
        self.init_failed = False
        self.start_time = ""
        self.terminating = False
        self._transitions: dict[str, tuple[str, str]] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- PodContext for ContainerRunner --------------------------------------
    def changed(self) -> None:
        self._dirty.set()
        self.k.pod_status_changed(self)

    def log_file(self, container: str) -> Path:
        return self.k.log_path(self.ns, self.name, container)

    async def process_spec(
        self, container: dict
    ) -> tuple[list[str], dict[str, str], str, Callable[[str], str]]:
        view = {**self.pod, "status": {"podIP": self.pod_ip, "hostIP": "127.0.0.1"}}
        view["spec"] = {**self.pod["spec"], "nodeName": self.k.node_name}
        base = self.k.base_env(self)
        cache: dict[tuple[str, str, str], dict | None] = {}

        async def fetch(kind: str, ns: str, name: str) -> dict | None:
            if (kind, ns, name) not in cache:
                cache[kind, ns, name] = await self.k.get_object(kind, ns, name)
            return cache[kind, ns, name]

        env = await build_env(view, container, base, fetch)
        mounts = mounts_for(container, self.dirs)
        binds = [m for m in mounts if self.k.mounts.can_bind(m[0])]
        mounts = [m for m in mounts if m not in binds]
        resolve: Resolver = await self.k.resolver()

        def rewrite(value: str) -> str:
            return rewrite_hosts(rewrite_path(value, mounts), self.ns, resolve)

        words = [expand_vars(w, env) for w in images.argv(container)]
        final_env = {k: (v if base.get(k) == v else rewrite(v)) for k, v in env.items()}
        cwd = container.get("workingDir")
        if cwd:
            mapped = rewrite_path(cwd, mounts)
            local = Path(mapped) if mapped != cwd else self.dir / "rootfs" / cwd.lstrip("/")
        else:
            local = self.dir / "rootfs"
        await asyncio.to_thread(local.mkdir, parents=True, exist_ok=True)
        argv = self.k.mounts.wrap(binds, [rewrite(w) for w in words])
        return argv, final_env, str(local), rewrite

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._writer())]

    def update(self, pod: dict) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating:
            self.terminating = True
            self.grace = _grace(pod)
            self._tasks.append(asyncio.create_task(self._terminate()))

    async def _run(self) -> None:
        if not await bind(self.k.api, self.pod, self.k.node_name):
            return
        self.pod_ip = self.k.pod_ips.allocate()
        self.start_time = now_iso()
        self.scheduled = True
        self.changed()
        await self._prepare_volumes()
        for runner in self.init_runners:
            if await runner.run() != 0:
                self.init_failed = True
                self.changed()
                return
        self.initialized = True
        self.changed()
        await asyncio.gather(*(r.run() for r in self.runners))

    async def _prepare_volumes(self) -> None:
        while True:
            try:
                self.dirs = await materialise(
                    self.pod, self.dir / "volumes", self.k.get_object, self._token
                )
                return
            except ConfigError as exc:
                log.info("pod %s/%s volumes not ready: %s", self.ns, self.name, exc)
                waiting = {"waiting": {"reason": "ContainerCreating", "message": str(exc)}}
                for r in self.runners:
                    r.state = waiting
                self.changed()
                await asyncio.sleep(1)

    async def _token(self, source: dict) -> str:
        """A bound token for the pod's ServiceAccount (TokenRequest, as the kubelet does)."""
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        spec: dict = {
            "expirationSeconds": int(source.get("expirationSeconds") or 3607),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.name,
                "uid": self.uid,
            },  # fmt: skip
        }
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token"
        try:
            answer = await self.k.api.request("POST", path, body=body)
        except ApiError as exc:
            if exc.status in (404, 405):
                return self.k.token  # an API server without TokenRequest
            raise ConfigError(f"token for service account {self.ns}/{sa}: {exc}") from None
        return str((answer.get("status") or {}).get("token", ""))

    async def _terminate(self) -> None:
        """Graceful deletion: SIGTERM, wait the (capped) grace period, remove the pod."""
        runners = self.init_runners + self.runners
        await asyncio.gather(*(r.stop(self.grace) for r in runners))
        main = self._tasks[0]
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        self.changed()
        await asyncio.sleep(0.1)  # let the writer publish the terminated states
        try:
            await self.k.api.request(
                "DELETE",
                self.path,
                query={"gracePeriodSeconds": "0"},
                body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
            )
        except ApiError as exc:
            if exc.status != 404:
                log.warning("removing pod %s/%s failed: %s", self.ns, self.name, exc)

    async def shutdown(self) -> None:
        """Kill everything at once (pod gone from the API, or kubelet stopping)."""
        for r in self.init_runners + self.runners:
            r.kill_now()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for r in self.init_runners + self.runners:
            if r.proc is not None and r.proc.returncode is None:
                await r.proc.wait()
        if self.pod_ip:
            self.k.pod_ips.release(self.pod_ip)
        await asyncio.to_thread(shutil.rmtree, self.dir, True)

    # -- status ----------------------------------------------------------------
    def _cond(self, kind: str, ok: bool, reason: str = "") -> dict:
        status = "True" if ok else "False"
        prev = self._transitions.get(kind)
        if prev is None or prev[0] != status:
            self._transitions[kind] = (status, now_iso())
        cond = {"type": kind, "status": status, "lastTransitionTime": self._transitions[kind][1]}
        if reason and not ok:
            cond["reason"] = reason
        return cond

    def phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if self.runners and all(r.done for r in self.runners):
            return "Succeeded" if all(r.exit_code == 0 for r in self.runners) else "Failed"
        if self.initialized and all(r.ever_ran for r in self.runners):
            return "Running"
        return "Pending"

    def compute_status(self) -> dict:
        phase = self.phase()
        finished = phase in ("Succeeded", "Failed")
        ready = phase == "Running" and all(r.ready for r in self.runners)
        not_ready = "PodCompleted" if finished else "ContainersNotReady"
        status: dict = {
            "phase": phase,
            "conditions": [
                self._cond("Initialized", self.initialized or finished, "ContainersNotInitialized"),
                self._cond("Ready", ready, not_ready),
                self._cond("ContainersReady", ready, not_ready),
                self._cond("PodScheduled", self.scheduled),
            ],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "qosClass": "BestEffort",
            "containerStatuses": [r.status() for r in self.runners],
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.start_time:
            status["startTime"] = self.start_time
        if self.init_runners:
            status["initContainerStatuses"] = [r.status() for r in self.init_runners]
        return status

    async def _writer(self) -> None:
        """Publish status through pods/status whenever it differs from the last write."""
        last: dict | None = None
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # coalesce bursts of container events
            self._dirty.clear()
            status = self.compute_status()
            if status == last:
                continue
            patch = [{"op": "add", "path": "/status", "value": status}]
            try:
                await self.k.api.request(
                    "PATCH", self.path + "/status", body=patch, content_type=JSON_PATCH
                )
                last = status
            except ApiError as exc:
                if exc.status == 404:
                    return
                log.warning("status of pod %s/%s not written: %s", self.ns, self.name, exc)
                self._dirty.set()
                await asyncio.sleep(1)
