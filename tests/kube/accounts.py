"""ServiceAccounts, Roles and tokens for components that tests start beside the emulator.

RBAC is on in the emulator: a process started by a test either uses the admin
kubeconfig or runs as a ServiceAccount with the Roles a real install gives it.
``traefik_access`` is what the chart grants Traefik's kubernetescrd provider
(read Services, Secrets, ConfigMaps, EndpointSlices and the traefik.io kinds
in the watched namespaces; nodes cluster-wide). ``grant`` creates such objects
with the admin token; ``issue_token`` asks the TokenRequest API for a token,
as ``kubectl create token`` does.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from .apiserver.auth import ADMIN_TOKEN

RBAC = "rbac.authorization.k8s.io/v1"
TRAEFIK_KINDS = [
    "ingressroutes", "ingressroutetcps", "ingressrouteudps", "middlewares", "middlewaretcps",
    "tlsoptions", "tlsstores", "traefikservices", "serverstransports", "serverstransporttcps",
]  # fmt: skip
_PLURALS = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
            "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
            "Namespace": "namespaces"}  # fmt: skip
_READ = ["get", "list", "watch"]


def collection(obj: dict[str, Any]) -> str:
    """The REST collection an object is created in (the kinds this module writes)."""
    api = obj["apiVersion"]
    root = f"/apis/{api}" if "/" in api else f"/api/{api}"
    ns = obj["metadata"].get("namespace")
    if ns:
        root += f"/namespaces/{ns}"
    return f"{root}/{_PLURALS[obj['kind']]}"


def service_account(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace}}  # fmt: skip


def role(name: str, namespace: str | None, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A Role (with ``namespace``) or ClusterRole (``namespace=None``)."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": RBAC, "kind": "Role" if namespace else "ClusterRole",
            "metadata": meta, "rules": rules}  # fmt: skip


def binding(name: str, namespace: str | None, sa: str, sa_namespace: str) -> dict[str, Any]:
    """Binds Role/ClusterRole ``name`` to ServiceAccount ``sa_namespace/sa``."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    kind = "Role" if namespace else "ClusterRole"
    return {"apiVersion": RBAC, "kind": kind + "Binding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": sa,
                          "namespace": sa_namespace}]}  # fmt: skip


def traefik_access(sa: str, namespace: str, watched: list[str]) -> list[dict[str, Any]]:
    """The chart's Traefik ServiceAccount and its read-only Roles."""
    rules = [
        {"apiGroups": [""], "resources": ["services", "secrets", "configmaps", "endpoints"],
         "verbs": _READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
        {"apiGroups": ["traefik.io"], "resources": TRAEFIK_KINDS, "verbs": _READ},
    ]  # fmt: skip
    out = [service_account(sa, namespace)]
    for ns in watched:
        out += [role(sa, ns, rules), binding(sa, ns, sa, namespace)]
    nodes = f"{sa}-{namespace}-nodes"
    out += [role(nodes, None, [{"apiGroups": [""], "resources": ["nodes"], "verbs": _READ}]),
            binding(nodes, None, sa, namespace)]  # fmt: skip
    return out


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict:
    async with session.post(url, json=body) as resp:
        answer = await resp.json(content_type=None)
        if resp.status >= 300:
            raise RuntimeError(f"POST {url}: {resp.status} {answer.get('message')}")
        return dict(answer)


async def grant(api_url: str, objects: list[dict[str, Any]], token: str = ADMIN_TOKEN) -> None:
    """Create ``objects`` (ServiceAccounts, Roles, bindings) as the admin user."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for obj in objects:
            await _post(session, api_url + collection(obj), obj)


async def issue_token(api_url: str, namespace: str, sa: str, seconds: int = 86400) -> str:
    """A token for ServiceAccount ``namespace/sa`` from the TokenRequest API."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds}}  # fmt: skip
    url = f"{api_url}/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token"
    async with aiohttp.ClientSession(headers=headers) as session:
        answer = await _post(session, url, body)
    return str(answer["status"]["token"])
