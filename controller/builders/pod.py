"""Parts shared by the scheduler and worker pods: resources, env, volumes, security.

Both pods mount the cluster Secret read-only, learn their own IP from the
downward API (``status.podIP``) and bind to it, run as a non-root user with no
service-account token, and finally get the operator's extra pod/container
config deep-merged in (so an operator can still override anything here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jhub_gateway.tls import tls_env

from .labels import secret_name
from .ownership import merge_json_objects, object_meta
from .secret import TLS_CERT_KEY, TLS_KEY_KEY
from .spec import ClusterSpec

__all__ = [
    "CONTAINER_NAME",
    "CREDENTIALS_DIR",
    "cpu_quantity",
    "field_env",
    "make_pod",
    "pod_env",
    "resources",
]

CREDENTIALS_DIR = "/etc/dask-credentials"
CREDENTIALS_VOLUME = "dask-credentials"
CONTAINER_NAME = "dask"
POD_IP = "POD_IP"


def cpu_quantity(cores: float) -> str:
    """Cores as a Kubernetes quantity in whole millicores (``1``, ``500m``, ``1500m``)."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def resources(cores: float, cores_limit: float, memory: int, memory_limit: int) -> dict[str, Any]:
    """Requests and limits; a zero limit means "same as the request" (guaranteed QoS)."""
    return {
        "requests": {"cpu": cpu_quantity(cores), "memory": str(memory)},
        "limits": {
            "cpu": cpu_quantity(cores_limit or cores),
            "memory": str(memory_limit or memory),
        },
    }


def field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def pod_env(
    spec: ClusterSpec,
    own: Mapping[str, str],
    *,
    first: list[dict[str, Any]],
    defaults: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Container env: ``first`` (downward API), then the user's, then ours.

    ``POD_IP`` comes first so that every later value and the args may use
    ``$(POD_IP)``; ours win over same-named user variables, because the
    runtime cannot work with e.g. a different TLS file. ``defaults`` are
    settings the user may override (they come before the user's).
    """
    env = [field_env(POD_IP, "status.podIP"), *first]
    ours = {
        **own,
        **tls_env(f"{CREDENTIALS_DIR}/{TLS_CERT_KEY}", f"{CREDENTIALS_DIR}/{TLS_KEY_KEY}"),
    }
    reserved = {e["name"] for e in env} | set(ours)
    user = {k: v for k, v in sorted(spec.environment.items()) if k not in reserved}
    fallback = {k: v for k, v in (defaults or {}).items() if k not in reserved and k not in user}
    env += [{"name": k, "value": v} for k, v in {**fallback, **user, **ours}.items()]
    return env


def _credentials_volume(spec: ClusterSpec, keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": CREDENTIALS_VOLUME,
        "secret": {
            "secretName": secret_name(spec.name),
            "items": [{"key": k, "path": k} for k in keys],
            # Group-readable for fsGroup: the files belong to root on a real node.
            "defaultMode": 0o440,
        },
    }


def make_pod(
    spec: ClusterSpec,
    *,
    name: str,
    generate_name: bool = False,
    labels: dict[str, str],
    extra_labels: Mapping[str, str],
    extra_annotations: Mapping[str, str],
    container: dict[str, Any],
    secret_keys: tuple[str, ...],
    restart_policy: str,
    extra_pod_config: Mapping[str, Any],
    extra_container_config: Mapping[str, Any],
) -> dict[str, Any]:
    """A Pod around ``container`` (which carries name-independent bits: args, env, ...).

    ``labels`` (ours and upstream's keys) win over the operator's ``extra_labels``
    on a shared key, unlike upstream: the controller's informers, the Service
    selector and ``status.selector`` find pods by exactly these labels, so a pod
    relabelled away from its cluster or instance would be invisible to its own
    controller (which would then create it again, forever) or counted by another.
    """
    extra = {k: v for k, v in sorted(extra_labels.items()) if k not in labels}
    meta = object_meta(spec, name, {**labels, **extra}, generate_name=generate_name)
    if extra_annotations:
        meta["annotations"] = dict(sorted(extra_annotations.items()))
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        **({"imagePullPolicy": spec.image_pull_policy} if spec.image_pull_policy else {}),
        **container,
        "volumeMounts": [
            {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_DIR, "readOnly": True}
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_user,
            "fsGroup": spec.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # both bases are built just above and owned by no one else: only the extras are copied
        "containers": [merge_json_objects(container, extra_container_config, copy_base=False)],
        "volumes": [_credentials_volume(spec, secret_keys)],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": merge_json_objects(pod_spec, extra_pod_config, copy_base=False),
    }
