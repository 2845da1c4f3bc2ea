"""The ``core/v1 Endpoints`` controller: one Endpoints per Service, from its EndpointSlices.

The kubelet writes EndpointSlices (``discovery.k8s.io/v1``) for selector
Services; older clients still read the deprecated ``v1 Endpoints`` instead
(upstream dask-gateway's controller waits for its scheduler's). As on a real
cluster, Endpoints are named after the Service and carry the Service's labels;
ready addresses go to ``subsets[].addresses``, others (not terminating) to
``subsets[].notReadyAddresses``, and the Endpoints of a Service that is gone
are deleted. An Endpoints object written by someone else (no selector on the
Service, or not carrying our annotation) is left alone.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .controllers import Controller
from .defaults import now
from .resources import ResourceType
from .store import Event, StorageKey
from .verbs import meta_deleting

__all__ = ["EndpointsController", "desired_endpoints"]

SERVICE_KEY = ("", "services")
ENDPOINTS_KEY = ("", "endpoints")
SLICE_KEY = ("discovery.k8s.io", "endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def _address(endpoint: dict[str, Any], ip: str) -> dict[str, Any]:
    out: dict[str, Any] = {"ip": ip}
    if endpoint.get("nodeName"):
        out["nodeName"] = endpoint["nodeName"]
    if endpoint.get("targetRef"):
        out["targetRef"] = copy.deepcopy(endpoint["targetRef"])
    return out


def desired_endpoints(service: dict[str, Any], slices: list[dict[str, Any]]) -> dict[str, Any]:
    """The Endpoints body (without metadata bookkeeping) for ``service`` (pure)."""
    meta = service["metadata"]
    ready: list[dict[str, Any]] = []
    not_ready: list[dict[str, Any]] = []
    ports: dict[tuple[str, int, str], dict[str, Any]] = {}
    for piece in slices:
        for port in piece.get("ports") or []:
            if port.get("port") is None:
                continue
            entry = {"name": port.get("name") or "", "port": int(port["port"]),
                     "protocol": port.get("protocol") or "TCP"}  # fmt: skip
            ports[(entry["name"], entry["port"], entry["protocol"])] = entry
        for endpoint in piece.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("terminating"):
                continue
            bucket = ready if conditions.get("ready", True) else not_ready
            bucket += [_address(endpoint, ip) for ip in endpoint.get("addresses") or []]
    subset: dict[str, Any] = {}
    if ready:
        subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
    if not_ready:
        subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
    if subset and ports:
        subset["ports"] = [
            {k: v for k, v in p.items() if v != ""} for _, p in sorted(ports.items())
        ]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels") or {}),
        },
        "subsets": [subset] if subset else [],
    }


class EndpointsController(Controller):
    """Keeps ``v1 Endpoints`` in step with Services and their EndpointSlices."""

    def interested(self, key: StorageKey, event: Event) -> bool:
        return key in (SERVICE_KEY, SLICE_KEY, ENDPOINTS_KEY)

    def _rt(self) -> ResourceType:
        rt = self.api.registry.by_storage(ENDPOINTS_KEY)
        assert rt is not None
        return rt

    def sync(self) -> None:
        store = self.api.store
        slices: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for piece in store.items(SLICE_KEY):
            service = (piece["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if service:
                slices.setdefault((piece["metadata"]["namespace"], service), []).append(piece)
        wanted: set[tuple[str, str]] = set()
        for service in store.items(SERVICE_KEY):
            meta = service["metadata"]
            if meta_deleting(service) or not (service.get("spec") or {}).get("selector"):
                continue
            key = (meta["namespace"], meta["name"])
            wanted.add(key)
            self._write(desired_endpoints(service, slices.get(key, [])))
        for endpoints in list(store.items(ENDPOINTS_KEY)):
            meta = endpoints["metadata"]
            ours = TRIGGER_ANNOTATION in (meta.get("annotations") or {})
            if ours and (meta["namespace"], meta["name"]) not in wanted:
                self.delete(self._rt(), endpoints)

    def _write(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        rt = self._rt()
        current = self.api.store.get(ENDPOINTS_KEY, meta["namespace"], meta["name"])
        if current is None:
            meta["annotations"] = {TRIGGER_ANNOTATION: now()}
            try:
                self.api.create(rt, meta["namespace"], body)
            except errors.ApiError as exc:
                if exc.code != 409:
                    raise
            return
        if TRIGGER_ANNOTATION not in (current["metadata"].get("annotations") or {}):
            return  # written by a client, not by us: not ours to change
        same = (
            current.get("subsets", []) == body["subsets"]
            and (current["metadata"].get("labels") or {}) == meta["labels"]
        )
        if same:
            return

        def change(obj: dict[str, Any]) -> None:
            obj["subsets"] = body["subsets"]
            obj["metadata"]["labels"] = meta["labels"]
            obj["metadata"].setdefault("annotations", {})[TRIGGER_ANNOTATION] = now()

        self.rewrite(rt, current, change)
