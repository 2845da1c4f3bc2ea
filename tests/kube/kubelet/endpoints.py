"""EndpointSlice controller: one ``discovery.k8s.io/v1`` slice per selector Service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .api import JSON_PATCH, ApiError, RawApi
from .probes import resolve_port

log = logging.getLogger(__name__)

SERVICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice-controller.k8s.io"
Cache = dict[tuple[str, str], dict]


def slice_name(service: str) -> str:
    return f"{service}-emulated"


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _is_ready(pod: dict) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _target_port(sp: dict, pods: list[dict]) -> int | None:
    target: int | str = sp.get("targetPort", sp["port"])
    for pod in pods:
        for container in pod["spec"].get("containers", []):
            try:
                return resolve_port(target, container)
            except ValueError:
                continue
    return int(target) if str(target).isdigit() else None


def desired_slice(svc: dict, pods: Cache, node: str) -> dict:
    """The slice body for a Service given the current pods (pure)."""
    meta, spec = svc["metadata"], svc.get("spec", {})
    ns, selector = meta["namespace"], spec.get("selector") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    members = sorted(
        (
            p
            for (pns, _), p in pods.items()
            if pns == ns
            and _matches(selector, p["metadata"].get("labels") or {})
            and p.get("status", {}).get("podIP")
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ),
        key=lambda p: p["metadata"]["name"],
    )
    ports = []
    for sp in spec.get("ports", []):
        port = _target_port(sp, members)
        if port is not None:
            entry = {
                "name": sp.get("name", ""),
                "port": port,
                "protocol": sp.get("protocol", "TCP"),
            }
            ports.append(entry)
    endpoints = []
    for p in members:
        terminating = bool(p["metadata"].get("deletionTimestamp"))
        ready = _is_ready(p)
        endpoints.append(
            {
                "addresses": [p["status"]["podIP"]],
                "conditions": {
                    "ready": (ready or publish) and not terminating,
                    "serving": ready or publish,
                    "terminating": terminating,
                },
                "nodeName": node,
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": p["metadata"]["name"],
                    "uid": p["metadata"].get("uid", ""),
                },
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(meta["name"]),
            "namespace": ns,
            "labels": {
                SERVICE_LABEL: meta["name"],
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


class EndpointSliceController:
    """Reconciles slices of Services marked dirty by pod and Service events."""

    def __init__(
        self, api: RawApi, pods: Callable[[], Cache], services: Callable[[], Cache], node: str
    ) -> None:
        self.api = api
        self.pods = pods
        self.services = services
        self.node = node
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._written: dict[tuple[str, str], dict] = {}
        self._members: dict[tuple[str, str], set[str]] = {}  # pod names in the written slice

    def service_changed(self, ns: str, name: str) -> None:
        self._dirty.add((ns, name))
        self._wake.set()

    def pod_changed(self, pod: dict) -> None:
        """Mark the Services that select ``pod`` now or listed it in their slice.

        Only those: re-deriving every slice of the namespace on each pod event
        costs services x pods per event, which stalls a node with many of both.
        """
        meta = pod["metadata"]
        ns, name, labels = meta.get("namespace", ""), meta["name"], meta.get("labels") or {}
        for key, svc in self.services().items():
            if key[0] != ns:
                continue
            selector = svc.get("spec", {}).get("selector") or {}
            if (selector and _matches(selector, labels)) or name in self._members.get(key, ()):
                self._dirty.add(key)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(0.05)  # batch a burst of pod updates into one write
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for key in sorted(dirty):
                try:
                    await self._reconcile(key)
                except ApiError as exc:
                    log.warning("endpointslice for %s/%s not written: %s", *key, exc)
                    self._dirty.add(key)
                    self._wake.set()
                    await asyncio.sleep(1)

    async def _reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        base = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        svc = self.services().get(key)
        if svc is None or not (svc.get("spec", {}).get("selector")):
            self._members.pop(key, None)
            if self._written.pop(key, None) is not None:
                try:
                    await self.api.request("DELETE", f"{base}/{slice_name(name)}")
                except ApiError as exc:
                    if exc.status != 404:
                        raise
            return
        body = desired_slice(svc, self.pods(), self.node)
        if self._written.get(key) == body:
            return
        patch = [
            {"op": "add", "path": f"/{field}", "value": body[field]}
            for field in ("addressType", "endpoints", "ports")
        ]
        patch.append({"op": "add", "path": "/metadata/labels", "value": body["metadata"]["labels"]})
        try:
            await self.api.request(
                "PATCH", f"{base}/{slice_name(name)}", body=patch, content_type=JSON_PATCH
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.api.request("POST", base, body=body)
        self._written[key] = body
        self._members[key] = {e["targetRef"]["name"] for e in body["endpoints"]}
