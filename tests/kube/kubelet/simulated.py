"""Simulated pods (as KWOK makes them): bound, given an IP, Running and Ready, no process.

For benchmarking controllers at a scale no machine could run as processes. A
simulated pod costs the API server what a real one does (binding, one status
write, the deletion) and nothing else: no volumes are written, no token is
requested, no probe runs, and its containers are reported running and ready
from the first status on. Init containers are reported completed. On deletion
it is removed at once (grace period 0), as a process pod is after its
processes exited.

Which pods are simulated: all of a kubelet started with ``simulated=True``, and
any pod annotated ``emulated.kubelet/simulated: "true"``; ``"false"`` makes a
pod run as processes even on a simulated kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .api import JSON_PATCH, ApiError
from .container import now_iso
from .pod import bind

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger(__name__)

ANNOTATION = "emulated.kubelet/simulated"


def is_simulated(pod: dict, default: bool) -> bool:
    """Whether ``pod`` is simulated on a kubelet whose default is ``default``."""
    value = str((pod["metadata"].get("annotations") or {}).get(ANNOTATION, "")).lower()
    if value in ("true", "false"):
        return value == "true"
    return default


def _running(container: dict, started: str) -> dict:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "containerID": f"simulated://{container['name']}",
        "ready": True,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": started}},
        "lastState": {},
    }


def _completed(container: dict, started: str) -> dict:
    done = {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": {"terminated": done},
        "lastState": {},
    }


def running_status(pod: dict, pod_ip: str, now: str) -> dict:
    """The status a kubelet reports once every container of ``pod`` runs and is ready."""
    spec = pod["spec"]
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    status: dict = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "qosClass": "BestEffort",
        "startTime": now,
        "containerStatuses": [_running(c, now) for c in spec["containers"]],
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [_completed(c, now) for c in spec["initContainers"]]
    return status


class SimulatedPod:
    """Drives one simulated pod; the same surface as :class:`.pod.PodWorker`."""

    def __init__(self, kubelet: Kubelet, pod: dict) -> None:
        meta = pod["metadata"]
        self.k = kubelet
        self.pod = pod
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", "")
        self.path = f"/api/v1/namespaces/{self.ns}/pods/{self.name}"
        self.pod_ip = ""
        self.terminating = False
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if (self.pod.get("status") or {}).get("phase") == "Running":
            # Already running before this kubelet started: keep its address.
            self.pod_ip = str(self.pod["status"].get("podIP") or "")
            if self.pod_ip:
                self.k.pod_ips.reserve(self.pod_ip)
            return
        self._tasks.append(asyncio.create_task(self._run()))

    def update(self, pod: dict) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating:
            self.terminating = True
            self._tasks.append(asyncio.create_task(self._remove()))

    async def _run(self) -> None:
        if not await bind(self.k.api, self.pod, self.k.node_name):
            return
        self.pod_ip = self.k.pod_ips.allocate()
        patch = [{"op": "add", "path": "/status",
                  "value": running_status(self.pod, self.pod_ip, now_iso())}]  # fmt: skip
        try:
            await self.k.api.request(
                "PATCH", self.path + "/status", body=patch, content_type=JSON_PATCH
            )
        except ApiError as exc:
            if exc.status != 404:
                log.warning("status of pod %s/%s not written: %s", self.ns, self.name, exc)

    async def _remove(self) -> None:
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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pod_ip:
            self.k.pod_ips.release(self.pod_ip)
