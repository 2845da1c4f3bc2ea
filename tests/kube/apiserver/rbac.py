"""RBAC authorisation of every request, from the stored Role/ClusterRole(Binding)s.

Request attributes follow the real server: the verb comes from the method
(``GET`` is get, list or watch; ``DELETE`` on a collection is deletecollection),
the resource is the plural plus ``/subresource``, and paths outside ``/api`` and
``/apis/<g>/<v>/...`` resources are non-resource URLs (discovery, /version,
/openapi). ``system:masters`` is allowed everything without a lookup. The
bootstrap roles a cluster starts with (``cluster-admin``, ``admin``, ``edit``,
``view``, ``system:discovery``, ``system:public-info-viewer``,
``system:basic-user``) are created as ordinary objects at start.
Escalation checks on writing Roles are not done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .auth import User

RBAC = "rbac.authorization.k8s.io"
ROLE_KEYS = {
    "Role": (RBAC, "roles"),
    "ClusterRole": (RBAC, "clusterroles"),
}
ROLEBINDINGS = (RBAC, "rolebindings")
CLUSTERROLEBINDINGS = (RBAC, "clusterrolebindings")


@dataclass(frozen=True)
class Attributes:
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    def describe(self) -> str:
        if not self.is_resource:
            return f'cannot {self.verb} path "{self.path}"'
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return f'cannot {self.verb} resource "{res}" in API group "{self.api_group}" {where}'


_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_verb(method: str, has_name: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "DELETE" and not has_name:
        return "deletecollection"
    return _METHOD_VERBS.get(method, method.lower())


def _matches(values: list[str], value: str) -> bool:
    return "*" in values or value in values


def _rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    if not _matches(rule.get("verbs") or [], attrs.verb):
        return False
    if not attrs.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if (
                url == attrs.path
                or url == "*"
                or (url.endswith("*") and attrs.path.startswith(url[:-1]))
            ):
                return True
        return False
    if not _matches(rule.get("apiGroups") or [], attrs.api_group):
        return False
    full = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    resources = rule.get("resources") or []
    if not ("*" in resources or full in resources or (
        attrs.subresource and f"*/{attrs.subresource}" in resources
    )):  # fmt: skip
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: dict[str, Any], user: User, binding_ns: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa = user.service_account
        return sa is not None and sa == (subject.get("namespace") or binding_ns, name)
    return False


class Authorizer:
    def __init__(self, store: Any) -> None:
        self.store = store

    def _role_rules(self, ref: dict[str, Any], ns: str) -> list[dict[str, Any]]:
        key = ROLE_KEYS.get(ref.get("kind", ""))
        if key is None:
            return []
        role = self.store.get(key, ns if ref.get("kind") == "Role" else "", ref.get("name", ""))
        if role is None:
            return []
        rules = list(role.get("rules") or [])
        aggregation = role.get("aggregationRule")
        if aggregation and ref.get("kind") == "ClusterRole":
            rules += self._aggregated(aggregation)
        return rules

    def _aggregated(self, aggregation: dict[str, Any]) -> list[dict[str, Any]]:
        from .selectors import match_labels_selector

        rules = []
        for role in self.store.items(ROLE_KEYS["ClusterRole"]):
            labels = role["metadata"].get("labels") or {}
            for selector in aggregation.get("clusterRoleSelectors") or []:
                if match_labels_selector(selector)({"metadata": {"labels": labels}}):
                    rules += role.get("rules") or []
                    break
        return rules

    def allowed(self, user: User, attrs: Attributes) -> bool:
        if "system:masters" in user.groups:
            return True
        for binding in self.store.items(CLUSTERROLEBINDINGS):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                rules = self._role_rules(binding.get("roleRef") or {}, "")
                if any(_rule_allows(r, attrs) for r in rules):
                    return True
        if attrs.namespace and attrs.is_resource:
            for binding in self.store.items(ROLEBINDINGS, attrs.namespace):
                subjects = binding.get("subjects") or []
                if any(_subject_matches(s, user, attrs.namespace) for s in subjects):
                    rules = self._role_rules(binding.get("roleRef") or {}, attrs.namespace)
                    if any(_rule_allows(r, attrs) for r in rules):
                        return True
        return False

    def rules_for(self, user: User, ns: str) -> list[dict[str, Any]]:
        """Every rule that applies to ``user`` in ``ns`` (SelfSubjectRulesReview)."""
        out: list[dict[str, Any]] = []
        if "system:masters" in user.groups:
            return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        for binding in self.store.items(CLUSTERROLEBINDINGS):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                out += self._role_rules(binding.get("roleRef") or {}, "")
        for binding in self.store.items(ROLEBINDINGS, ns):
            if any(_subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                out += self._role_rules(binding.get("roleRef") or {}, ns)
        return out


# -- bootstrap policy -------------------------------------------------------------

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_WORKLOADS = {
    "": ["pods", "pods/log", "pods/status", "services", "endpoints", "configmaps",
         "persistentvolumeclaims", "serviceaccounts", "events", "replicationcontrollers"],
    "apps": ["deployments", "deployments/scale", "replicasets", "replicasets/scale",
             "statefulsets", "statefulsets/scale", "daemonsets"],
    "batch": ["jobs", "cronjobs"],
    "autoscaling": ["horizontalpodautoscalers"],
    "policy": ["poddisruptionbudgets"],
    "networking.k8s.io": ["ingresses", "networkpolicies"],
    "discovery.k8s.io": ["endpointslices"],
    "coordination.k8s.io": ["leases"],
}  # fmt: skip


def _rules(groups: dict[str, list[str]], verbs: list[str]) -> list[dict[str, Any]]:
    return [{"apiGroups": [g], "resources": r, "verbs": verbs} for g, r in groups.items()]


def bootstrap_objects() -> list[tuple[tuple[str, str], dict[str, Any]]]:
    def role(name: str, rules: list[dict[str, Any]]) -> tuple[tuple[str, str], dict[str, Any]]:
        return ROLE_KEYS["ClusterRole"], {
            "apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "rules": rules,
        }  # fmt: skip

    def binding(name: str, role_name: str, groups: list[str]) -> tuple[tuple[str, str], dict]:
        return CLUSTERROLEBINDINGS, {
            "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role_name},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": g} for g in groups],
        }  # fmt: skip

    secrets_rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": _READ + _WRITE}
    rbac_rule = {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"],
                 "verbs": _READ + _WRITE}  # fmt: skip
    token_rule = {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}
    return [
        role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                               {"nonResourceURLs": ["*"], "verbs": ["*"]}]),  # fmt: skip
        role("admin", _rules(_WORKLOADS, _READ + _WRITE) + [secrets_rule, rbac_rule, token_rule]),
        role("edit", _rules(_WORKLOADS, _READ + _WRITE) + [secrets_rule, token_rule]),
        role("view", _rules(_WORKLOADS, _READ)),
        role("system:discovery", [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                       "/openapi", "/openapi/*", "/version",
                                                       "/version/", "/healthz", "/livez",
                                                       "/readyz"],
                                   "verbs": ["get"]}]),  # fmt: skip
        role("system:public-info-viewer", [{"nonResourceURLs": ["/healthz", "/livez", "/readyz",
                                                                "/version", "/version/"],
                                            "verbs": ["get"]}]),  # fmt: skip
        role("system:basic-user", [{"apiGroups": ["authorization.k8s.io"],
                                    "resources": ["selfsubjectaccessreviews",
                                                  "selfsubjectrulesreviews"],
                                    "verbs": ["create"]},
                                   {"apiGroups": ["authentication.k8s.io"],
                                    "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
        binding("cluster-admin", "cluster-admin", ["system:masters"]),
        binding("system:discovery", "system:discovery", ["system:authenticated"]),
        binding("system:public-info-viewer", "system:public-info-viewer",
                ["system:authenticated", "system:unauthenticated"]),
        binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
    ]  # fmt: skip
