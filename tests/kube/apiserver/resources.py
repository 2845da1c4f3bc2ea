"""Resource types served by the emulator: the built-in table and CRD-registered ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: list[str] = field(default_factory=list)
    subresources: frozenset[str] = frozenset()
    categories: list[str] = field(default_factory=list)
    # CRD-only: openAPIV3Schema, printer columns, scale paths.
    schema: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    scale: dict[str, Any] | None = None
    custom: bool = False
    # Version whose apiVersion objects are stored with (CRDs); "" = this one.
    storage_version: str = ""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        # All versions of one resource share storage (no conversion: "None" strategy).
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """``plural.group`` as it appears in real error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


def _rt(gv: str, plural: str, kind: str, *, cluster: bool = False, short: str = "", sub: str = "",
        cats: str = "") -> ResourceType:  # fmt: skip
    group, _, version = gv.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=not cluster,
        short_names=short.split(),
        subresources=frozenset(sub.split()),
        categories=cats.split(),
    )


BUILTINS: list[ResourceType] = [
    _rt("v1", "namespaces", "Namespace", cluster=True, short="ns", sub="status"),
    _rt("v1", "nodes", "Node", cluster=True, short="no", sub="status"),
    _rt("v1", "pods", "Pod", short="po", sub="status log binding", cats="all"),
    _rt("v1", "services", "Service", short="svc", sub="status", cats="all"),
    _rt("v1", "endpoints", "Endpoints", short="ep"),
    _rt("v1", "secrets", "Secret"),
    _rt("v1", "configmaps", "ConfigMap", short="cm"),
    _rt("v1", "serviceaccounts", "ServiceAccount", short="sa", sub="token"),
    _rt("v1", "events", "Event", short="ev"),
    _rt("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short="pvc", sub="status"),
    _rt("apps/v1", "deployments", "Deployment", short="deploy", sub="status scale", cats="all"),
    _rt("apps/v1", "replicasets", "ReplicaSet", short="rs", sub="status scale", cats="all"),
    _rt("apps/v1", "statefulsets", "StatefulSet", short="sts", sub="status scale", cats="all"),
    _rt("apps/v1", "daemonsets", "DaemonSet", short="ds", sub="status", cats="all"),
    _rt("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    _rt("coordination.k8s.io/v1", "leases", "Lease"),
    _rt("events.k8s.io/v1", "events", "Event", short="ev"),
    _rt("batch/v1", "jobs", "Job", sub="status", cats="all"),
    _rt("batch/v1", "cronjobs", "CronJob", short="cj", sub="status", cats="all"),
    _rt(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short="hpa",
        sub="status",
        cats="all",
    ),  # fmt: skip
    _rt("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short="pdb", sub="status"),
    _rt("networking.k8s.io/v1", "ingresses", "Ingress", short="ing", sub="status"),
    _rt("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short="netpol"),
    _rt("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _rt("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _rt("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", cluster=True),
    _rt("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", cluster=True),
    # Virtual kinds: created and answered, never stored.
    _rt("authentication.k8s.io/v1", "tokenreviews", "TokenReview", cluster=True),
    _rt("authentication.k8s.io/v1", "selfsubjectreviews", "SelfSubjectReview", cluster=True),
    _rt(
        "authorization.k8s.io/v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        cluster=True,
    ),
    _rt(
        "authorization.k8s.io/v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", cluster=True
    ),
    _rt("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview", cluster=True),
    _rt(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        cluster=True,
        short="crd crds",
        sub="status",
    ),  # fmt: skip
]

# Scale subresource paths of the built-in workloads (CRDs bring their own).
for _b in BUILTINS:
    if "scale" in _b.subresources:
        _b.scale = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".spec.selector",
        }


class Registry:
    """Lookup of resource types by group/version/plural, updated as CRDs come and go."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt
        self._crds: dict[str, list[ResourceType]] = {}
        # Bumped whenever the served types change (cached OpenAPI documents key on it).
        self.revision = 0

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_storage(self, key: tuple[str, str]) -> ResourceType | None:
        for rt in self._types.values():
            if rt.storage_key == key:
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred (first registered) first."""
        out: dict[str, list[str]] = {}
        for group, version, _ in self._types:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self._types.items() if g == group and v == version]

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def register_crd(self, crd: dict[str, Any]) -> None:
        self.unregister_crd(crd["metadata"]["name"])
        self.revision += 1
        spec = crd["spec"]
        names = spec["names"]
        served = [v for v in spec.get("versions", []) if v.get("served", True)]
        storage = next(
            (v["name"] for v in spec.get("versions", []) if v.get("storage")),
            served[0]["name"] if served else "",
        )
        types = []
        for ver in served:
            sub = ver.get("subresources") or {}
            rt = ResourceType(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                subresources=frozenset(k for k in ("status", "scale") if k in sub),
                categories=list(names.get("categories") or []),
                schema=(ver.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=list(ver.get("additionalPrinterColumns") or []),
                scale=sub.get("scale"),
                custom=True,
                storage_version=storage,
            )
            self._types[(rt.group, rt.version, rt.plural)] = rt
            types.append(rt)
        self._crds[crd["metadata"]["name"]] = types

    def unregister_crd(self, name: str) -> list[ResourceType]:
        types = self._crds.pop(name, [])
        self.revision += 1
        for rt in types:
            self._types.pop((rt.group, rt.version, rt.plural), None)
        return types
