"""Subresource verbs: ``scale`` (autoscaling/v1 Scale) and ``pods/binding``."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import errors
from .defaults import now
from .resources import ResourceType
from .selectors import label_selector_string

if TYPE_CHECKING:
    from .resources import Registry
    from .store import Store


def get_path(obj: Any, path: str) -> Any:
    """Value at a simple ``.a.b.c`` path (scale subresource paths), or None."""
    for part in path.strip(".").split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


class SubresourceVerbs:
    """Mixed into :class:`verbs.Api`, whose primitives these use."""

    store: Store
    registry: Registry

    def must_get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def _commit(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        sub: str | None,
        strict: bool = False,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def get_scale(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if not rt.scale:
            raise errors.not_found(rt.qualified + "/scale", obj["metadata"]["name"])
        meta = obj["metadata"]
        selector = get_path(obj, rt.scale.get("labelSelectorPath") or "")
        if isinstance(selector, dict):
            selector = label_selector_string(selector)
        status: dict[str, Any] = {
            "replicas": get_path(obj, rt.scale.get("statusReplicasPath") or "") or 0
        }
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },  # fmt: skip
            "spec": {"replicas": get_path(obj, rt.scale["specReplicasPath"]) or 0},
            "status": status,
        }

    def update_scale(self, rt: ResourceType, ns: str, name: str, scale: Any) -> dict[str, Any]:
        old = self.must_get(rt, ns, name)
        if not rt.scale:
            raise errors.not_found(rt.qualified + "/scale", name)
        replicas = ((scale or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", name, [errors.cause(
                "spec.replicas", f"Invalid value: {replicas!r}: must be a non-negative "
                "integer")])  # fmt: skip
        new = copy.deepcopy(old)
        rv = ((scale or {}).get("metadata") or {}).get("resourceVersion")
        if rv:
            new["metadata"]["resourceVersion"] = rv
        set_path(new, rt.scale["specReplicasPath"], replicas)
        self._commit(rt, old, new, None)
        return self.get_scale(rt, self.must_get(rt, ns, name))

    def bind(self, ns: str, name: str, body: Any) -> dict[str, Any]:
        rt = self.registry.get("", "v1", "pods")
        assert rt is not None
        pod = self.must_get(rt, ns, name)
        node = ((body or {}).get("target") or {}).get("name")
        if not node:
            raise errors.bad_request("binding target name is required")
        if pod["spec"].get("nodeName"):
            raise errors.conflict("pods", name,
                                  f"pod {name} is already assigned to node "
                                  f"\"{pod['spec']['nodeName']}\"")  # fmt: skip
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        conditions = new.setdefault("status", {}).setdefault("conditions", [])
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()})
        self.store.put(rt.storage_key, new)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}  # fmt: skip
