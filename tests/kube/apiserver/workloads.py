"""Deployment and ReplicaSet controllers, enough for a Helm chart's Deployments to run.

A Deployment owns one ReplicaSet per pod template (named ``<deploy>-<hash>``);
template changes scale the old ones to zero (a recreate-style rollout). A
ReplicaSet keeps ``spec.replicas`` live pods, created from its template.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .controllers import Controller
from .defaults import now
from .resources import ResourceType
from .selectors import match_labels_selector
from .store import Event, StorageKey
from .verbs import meta_deleting

DEPLOY_KEY = ("apps", "deployments")
RS_KEY = ("apps", "replicasets")
POD_KEY = ("", "pods")
HASH_LABEL = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _owner_ref(owner: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True,
            "blockOwnerDeletion": True}  # fmt: skip


def _pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _condition(old: list[dict[str, Any]], ctype: str, status: str, reason: str) -> dict:
    """A condition that keeps its transition time while its status is unchanged."""
    prev = next((c for c in old if c.get("type") == ctype), None)
    stamp = prev["lastTransitionTime"] if prev and prev.get("status") == status else now()
    return {"type": ctype, "status": status, "reason": reason, "lastTransitionTime": stamp,
            "lastUpdateTime": stamp, "message": reason}  # fmt: skip


class OwnerController(Controller):
    """A controller of objects that own others through controller ownerReferences."""

    def _rt(self, key: StorageKey) -> ResourceType:
        rt = self.api.registry.by_storage(key)
        assert rt is not None
        return rt

    def _owned(self, key: StorageKey, owner: dict[str, Any]) -> list[dict[str, Any]]:
        """Objects of ``key`` in the owner's namespace that ``owner`` controls."""
        uid, ns = owner["metadata"]["uid"], owner["metadata"]["namespace"]
        return [o for o in self.api.store.items(key, ns) if _controller_uid(o) == uid]


class WorkloadController(OwnerController):
    def interested(self, key: StorageKey, event: Event) -> bool:
        if key in (DEPLOY_KEY, RS_KEY):
            return True
        return key == POD_KEY and bool(event.obj["metadata"].get("ownerReferences"))

    def sync(self) -> None:
        for deploy in list(self.api.store.items(DEPLOY_KEY)):
            if not meta_deleting(deploy):
                self._deployment(deploy)
        for rs in list(self.api.store.items(RS_KEY)):
            if not meta_deleting(rs):
                self._replicaset(rs)

    def _deployment(self, deploy: dict[str, Any]) -> None:
        spec = deploy["spec"]
        meta = deploy["metadata"]
        ns = meta["namespace"]
        desired = int(spec.get("replicas", 1))
        template = copy.deepcopy(spec.get("template") or {})
        thash = template_hash(template)
        owned = self._owned(RS_KEY, deploy)
        current = next((r for r in owned if r["metadata"].get("labels", {}).get(HASH_LABEL)
                        == thash), None)  # fmt: skip
        rs_rt = self._rt(RS_KEY)
        if current is None:
            labels = dict(
                (template.get("metadata") or {}).get("labels") or {}, **{HASH_LABEL: thash}
            )
            template.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[HASH_LABEL] = thash
            revision = 1 + max((int(r["metadata"].get("annotations", {}).get(
                "deployment.kubernetes.io/revision", 0)) for r in owned), default=0)  # fmt: skip
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{meta['name']}-{thash}",
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                    "ownerReferences": [_owner_ref(deploy, "Deployment")],
                },
                "spec": {"replicas": desired, "selector": selector, "template": template},
            }
            current = self.api.create(rs_rt, ns, rs)
        elif current["spec"].get("replicas") != desired:
            self.rewrite(rs_rt, current, lambda o: o["spec"].update(replicas=desired))
        for old in owned:
            if old is not current and old["spec"].get("replicas", 0) != 0:
                self.rewrite(rs_rt, old, lambda o: o["spec"].update(replicas=0))
        owned = self._owned(RS_KEY, deploy)
        stats = [r.get("status") or {} for r in owned]
        available = sum(int(s.get("availableReplicas", 0)) for s in stats)
        total = sum(int(s.get("replicas", 0)) for s in stats)
        cur_status = next((r.get("status") or {} for r in owned
                           if r["metadata"]["uid"] == current["metadata"]["uid"]), {})  # fmt: skip
        old_conditions = (deploy.get("status") or {}).get("conditions") or []
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": total,
            "updatedReplicas": int(cur_status.get("replicas", 0)),
            "readyReplicas": sum(int(s.get("readyReplicas", 0)) for s in stats),
            "availableReplicas": available,
            "conditions": [
                _condition(
                    old_conditions,
                    "Available",
                    "True" if available >= desired else "False",
                    "MinimumReplicasAvailable"
                    if available >= desired
                    else "MinimumReplicasUnavailable",
                ),
                _condition(old_conditions, "Progressing", "True", "NewReplicaSetAvailable"),
            ],  # fmt: skip
        }
        if total > available:
            status["unavailableReplicas"] = total - available
        self._set_status(DEPLOY_KEY, deploy, status)

    def _set_status(self, key: StorageKey, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") == status:
            return
        new = copy.deepcopy(obj)
        new["status"] = status
        self.api._commit(self._rt(key), obj, new, "status")

    def _replicaset(self, rs: dict[str, Any]) -> None:
        meta = rs["metadata"]
        ns = meta["namespace"]
        spec = rs["spec"]
        desired = int(spec.get("replicas", 1))
        pod_rt = self._rt(POD_KEY)
        pods = [
            p for p in self._owned(POD_KEY, rs)
            if not meta_deleting(p)
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]  # fmt: skip
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        for _ in range(desired - len(pods)):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{meta['name']}-",
                    "namespace": ns,
                    "labels": dict(tmeta.get("labels") or {}),
                    "annotations": dict(tmeta.get("annotations") or {}),
                    "ownerReferences": [_owner_ref(rs, "ReplicaSet")],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            pods.append(self.api.create(pod_rt, ns, pod))
        if len(pods) > desired:
            # Remove unscheduled and not-ready pods first, newest first.
            pods.sort(key=lambda p: (bool(p["spec"].get("nodeName")), _pod_ready(p),
                                     p["metadata"]["creationTimestamp"]), reverse=False)  # fmt: skip
            for pod in pods[: len(pods) - desired]:
                self.delete(pod_rt, pod)
            pods = pods[len(pods) - desired :]
        matcher = match_labels_selector(spec.get("selector"))
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(1 for p in pods if matcher(p)),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta.get("generation", 1),
        }
        self._set_status(RS_KEY, rs, status)
