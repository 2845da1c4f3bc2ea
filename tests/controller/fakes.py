"""A fake informer cache and a recording API client for reconcile unit tests.

The client answers like an API server (creates get a name, uid, timestamps;
generateName is resolved) but only *records*: nothing reaches the cache until
the test calls ``sync()``, which is how a slow informer looks to the reconciler.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from jhub_gateway import crd
from jhub_gateway.controller.cache import ClusterCache
from jhub_gateway.kube.client import Invalid, Resource

Obj = dict[str, Any]
KINDS = {
    "pods": "Pod",
    "secrets": "Secret",
    "services": "Service",
    "ingressroutes": "IngressRoute",
    "ingressroutetcps": "IngressRouteTCP",
    "middlewares": "Middleware",
    crd.PLURAL: crd.KIND,
}
CREATED = "2026-12-02T08:00:00Z"


class RecordingClient:
    def __init__(self, cache: ClusterCache) -> None:
        self.cache = cache
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name)
        self.bodies: list[Obj] = []
        self.status_patches: list[Obj] = []
        self.pending: list[tuple[str, str, Obj]] = []  # (kind, etype, obj) not yet in the cache
        self.logs: dict[str, str] = {}
        self.refuse: set[str] = set()  # plurals whose creates answer 422
        self._seq = itertools.count(1)

    # -- the ApiClient protocol ------------------------------------------------------

    async def create(self, resource: Resource, body: Obj, namespace: str | None = None) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        n = next(self._seq)
        if "generateName" in meta:
            meta["name"] = f"{meta.pop('generateName')}{n:05d}"
        if resource.plural in self.refuse:
            raise Invalid(422, "Invalid", f"{resource.plural} {meta['name']} is invalid")
        meta.update(namespace=namespace, uid=f"uid-{n}", creationTimestamp=CREATED,
                    resourceVersion=str(n))  # fmt: skip
        self.calls.append(("create", resource.plural, meta["name"]))
        self.bodies.append(obj)
        self.pending.append((KINDS[resource.plural], "ADDED", obj))
        return copy.deepcopy(obj)

    async def patch(self, resource: Resource, name: str, patch: Any,
                    namespace: str | None = None) -> Obj:  # fmt: skip
        self.calls.append(("patch", resource.plural, name))
        return {}

    async def patch_status(self, resource: Resource, name: str, patch: Any,
                           namespace: str | None = None) -> Obj:  # fmt: skip
        self.calls.append(("status", resource.plural, name))
        self.status_patches.append(patch["status"])
        cluster = self.cache.clusters[(str(namespace), name)]
        status = dict(cluster.get("status") or {})
        for key, value in patch["status"].items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        self.pending.append((crd.KIND, "MODIFIED", {**cluster, "status": status}))
        return {}

    async def delete(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        self.calls.append(("delete", resource.plural, name))
        return {}

    async def delete_collection(self, resource: Resource, namespace: str | None = None, *,
                                label_selector: str) -> Obj:  # fmt: skip
        self.calls.append(("deletecollection", resource.plural, label_selector))
        return {}

    async def pod_log(self, name: str, namespace: str, *, tail_lines: int = 20) -> str:
        self.calls.append(("log", "pods", name))
        return self.logs.get(name, "")

    # -- test controls -----------------------------------------------------------------

    def sync(self) -> None:
        """Deliver every recorded write to the cache, as the informers eventually do."""
        for kind, etype, obj in self.pending:
            self.cache.apply(kind, etype, obj)
        self.pending.clear()

    def take(self) -> list[tuple[str, str, str]]:
        calls, self.calls = self.calls, []
        return calls


def cluster(name: str = "c1", namespace: str = "ns", **spec: Any) -> Obj:
    body = crd.cluster_object(name, namespace, {"username": "alice", **spec})
    body["metadata"].update(uid=f"uid-{name}", generation=1, creationTimestamp=CREATED,
                            labels=crd.instance_labels("gw"))  # fmt: skip
    return body


def set_pod_status(cache: ClusterCache, namespace: str, name: str, status: Obj) -> Obj:
    """Give a cached pod a status (what the kubelet writes) and return it."""
    for kind_map in (cache.children("Pod", key) for key in list(cache.keys_with_children())):
        pod = kind_map.get(name)
        if pod is not None and pod["metadata"]["namespace"] == namespace:
            updated = {**pod, "status": status}
            cache.apply("Pod", "MODIFIED", updated)
            return updated
    raise KeyError(name)


def running(ip: str = "10.0.0.5") -> Obj:
    return {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "dask", "ready": True, "state": {"running": {}}}],
    }


def pending(reason: str = "", message: str = "") -> Obj:
    if reason == "Unschedulable":
        return {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": reason, "message": message}
            ],  # fmt: skip
        }
    waiting = {"waiting": {"reason": reason, "message": message}} if reason else {"waiting": {}}
    return {"phase": "Pending", "containerStatuses": [{"name": "dask", "state": waiting}]}


def exited(code: int) -> Obj:
    return {
        "phase": "Failed" if code else "Succeeded",
        "containerStatuses": [{"name": "dask", "state": {"terminated": {"exitCode": code}}}],
    }
