"""The reconciler's read side: DaskClusters and their children, indexed by cluster.

Informers (or, in unit tests, a test) feed watch events into :meth:`ClusterCache.apply`;
the reconciler only reads. Children are found by upstream's
``gateway.dask.org/cluster`` label, which every object we create carries, so a
lookup costs one dict access instead of a scan of every pod.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jhub_gateway.crd import KIND, LABEL_COMPONENT, LABEL_UPSTREAM_CLUSTER

from .builders.warm import WARM

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, DaskCluster name)

POD, SECRET, SERVICE, INGRESSROUTE, INGRESSROUTETCP, MIDDLEWARE = (
    "Pod",
    "Secret",
    "Service",
    "IngressRoute",
    "IngressRouteTCP",
    "Middleware",
)
CHILD_KINDS = (POD, SECRET, SERVICE, INGRESSROUTE, INGRESSROUTETCP)


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def cluster_key_of(obj: Obj) -> Key | None:
    """The DaskCluster an object belongs to, by its label (None: not a cluster's child)."""
    m = meta(obj)
    if obj.get("kind") == KIND:
        return str(m.get("namespace") or ""), str(m.get("name") or "")
    name = (m.get("labels") or {}).get(LABEL_UPSTREAM_CLUSTER)
    return (str(m.get("namespace") or ""), str(name)) if name else None


def is_warm(obj: Obj) -> bool:
    """A warm scheduler pod or claim Secret that no cluster has claimed (see builders.warm)."""
    labels = meta(obj).get("labels") or {}
    return labels.get(LABEL_COMPONENT) == WARM and LABEL_UPSTREAM_CLUSTER not in labels


class ClusterCache:
    """Objects by kind, children by owning cluster; fed with ``apply(kind, etype, obj)``."""

    def __init__(self) -> None:
        self.clusters: dict[Key, Obj] = {}
        self._children: dict[str, dict[Key, dict[str, Obj]]] = {
            kind: defaultdict(dict) for kind in CHILD_KINDS
        }
        self.middlewares: dict[Key, Obj] = {}  # (namespace, name): shared per namespace
        # Warm scheduler pods and their claim Secrets (no cluster's yet), by (namespace, name).
        self.warm: dict[str, dict[Key, Obj]] = {POD: {}, SECRET: {}}

    def apply(self, kind: str, etype: str, obj: Obj) -> Key | None:
        """Record one watch event; returns the cluster key it concerns, if any."""
        m = meta(obj)
        ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
        gone = etype == "DELETED"
        if kind == KIND:
            if gone:
                self.clusters.pop((ns, name), None)
            else:
                self.clusters[(ns, name)] = obj
            return ns, name
        if kind == MIDDLEWARE:
            if gone:
                self.middlewares.pop((ns, name), None)
            else:
                self.middlewares[(ns, name)] = obj
            return None
        warm = self.warm.get(kind)
        if warm is not None:
            # A claim relabels a warm pod into a cluster's: it leaves this index then.
            warm.pop((ns, name), None)
            if not gone and is_warm(obj):
                warm[(ns, name)] = obj
        key = cluster_key_of(obj)
        if key is None or kind not in self._children:
            return None
        bucket = self._children[kind]
        if gone:
            objs = bucket.get(key)
            if objs is not None:
                objs.pop(name, None)
                if not objs:
                    del bucket[key]
        else:
            bucket[key][name] = obj
        return key

    def cluster(self, key: Key) -> Obj | None:
        return self.clusters.get(key)

    def children(self, kind: str, key: Key) -> dict[str, Obj]:
        """``name -> object`` of one kind belonging to cluster ``key`` (do not mutate)."""
        return self._children[kind].get(key) or {}

    def child(self, kind: str, key: Key, name: str) -> Obj | None:
        return self.children(kind, key).get(name)

    def middleware(self, namespace: str, name: str) -> Obj | None:
        return self.middlewares.get((namespace, name))

    def keys_with_children(self) -> set[Key]:
        out: set[Key] = set()
        for bucket in self._children.values():
            out.update(bucket)
        return out
