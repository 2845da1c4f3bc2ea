"""Admission the API server does on create: ServiceAccounts of namespaces and pods.

* Every namespace gets a ``default`` ServiceAccount when it is created (the real
  ServiceAccount controller does this moments later; doing it in the same step
  spares tests a race).
* A pod without ``serviceAccountName`` runs as ``default``; the ServiceAccount must
  exist (else 403, as the real admission plugin answers). Unless
  ``automountServiceAccountToken`` is false (pod first, then ServiceAccount), the
  pod gets the projected ``kube-api-access-<x>`` volume real clusters add (token,
  ``kube-root-ca.crt``'s ``ca.crt``, namespace) mounted read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` in every container.
"""

from __future__ import annotations

import random
from typing import Any

from . import errors

SA_KEY = ("", "serviceaccounts")
POD_KEY = ("", "pods")
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA = "kube-root-ca.crt"
_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def default_service_account(ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns}}  # fmt: skip


def _token_volume() -> dict[str, Any]:
    return {
        "name": "kube-api-access-" + "".join(random.choices(_CHARS, k=5)),
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": ROOT_CA, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }  # fmt: skip


def admit_pod(store: Any, pod: dict[str, Any]) -> None:
    spec = pod.setdefault("spec", {})
    ns = pod["metadata"]["namespace"]
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = name
    sa = store.get(SA_KEY, ns, name)
    if sa is None:
        raise errors.forbidden(
            f'pods "{pod["metadata"].get("name", "")}" is forbidden: error looking up service '
            f'account {ns}/{name}: serviceaccount "{name}" not found'
        )
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa.get("automountServiceAccountToken")
    if automount is False:
        return
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    if any(m.get("mountPath") == SA_MOUNT for c in containers for m in c.get("volumeMounts") or []):
        return
    volume = _token_volume()
    spec.setdefault("volumes", []).append(volume)
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": volume["name"], "mountPath": SA_MOUNT, "readOnly": True}
        )
