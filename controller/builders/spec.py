"""``ClusterSpec``: everything the builders need about one cluster, frozen.

Builders take this one value instead of dozens of keyword arguments. The
controller makes it with :meth:`ClusterSpec.from_resource` from a DaskCluster
object plus its own settings (instance name, api URL, Traefik wiring), so the
builders never read the API or the environment themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jhub_gateway.crd import (
    CONFIG_FIELDS,
    label_value_problem,
    metadata_key_problem,
    public_name,
)

__all__ = ["ClusterSpec"]

GIB = 2**30
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_EXTRA_METADATA = (
    "scheduler_extra_pod_labels",
    "scheduler_extra_pod_annotations",
    "worker_extra_pod_labels",
    "worker_extra_pod_annotations",
)


def _empty() -> Mapping[str, Any]:
    # A read-only empty mapping: a frozen spec should not hand out a mutable default.
    return _EMPTY


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster as the builders see it. Memory is in bytes, times in seconds."""

    name: str
    """``metadata.name`` of the DaskCluster (a DNS label)."""
    namespace: str
    username: str
    uid: str
    """``metadata.uid`` of the DaskCluster: every child's ownerReference points at it."""
    instance: str
    """Gateway instance (Helm release) name, the ``app.kubernetes.io/instance`` label."""
    api_url: str
    """Where schedulers send heartbeats, e.g. ``http://api-jhub-gateway.ns:8000/api``."""
    dashboard_auth_middleware: str
    """Traefik forward-auth Middleware that admits only the owner (or an admin); "" = none."""
    image: str = "ghcr.io/dask/dask-gateway:latest"
    image_pull_policy: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    scheduler_cmd: tuple[str, ...] = ("dask", "scheduler")
    worker_cmd: tuple[str, ...] = ("dask", "worker")
    worker_nanny: bool = False
    """Run each worker under a nanny process (see :mod:`.worker` for why not by default)."""
    environment: Mapping[str, str] = field(default_factory=_empty)
    scheduler_cores: float = 1.0
    scheduler_cores_limit: float = 0.0
    scheduler_memory: int = 2 * GIB
    scheduler_memory_limit: int = 0
    worker_cores: float = 1.0
    worker_cores_limit: float = 0.0
    worker_memory: int = 2 * GIB
    worker_memory_limit: int = 0
    worker_threads: int = 0
    idle_timeout: float = 1800.0
    adaptive_period: float = 3.0
    scheduler_extra_pod_config: Mapping[str, Any] = field(default_factory=_empty)
    scheduler_extra_container_config: Mapping[str, Any] = field(default_factory=_empty)
    worker_extra_pod_config: Mapping[str, Any] = field(default_factory=_empty)
    worker_extra_container_config: Mapping[str, Any] = field(default_factory=_empty)
    scheduler_extra_pod_labels: Mapping[str, str] = field(default_factory=_empty)
    scheduler_extra_pod_annotations: Mapping[str, str] = field(default_factory=_empty)
    worker_extra_pod_labels: Mapping[str, str] = field(default_factory=_empty)
    worker_extra_pod_annotations: Mapping[str, str] = field(default_factory=_empty)
    """The operator's extra pod metadata; the gateway's own labels win over these."""
    scheduler_address: str = ""
    """``host:port`` of the running scheduler; only worker pods need it."""
    dashboard_auth_middleware_namespace: str = ""
    """Namespace of that Middleware; empty = the cluster's (other namespaces need
    Traefik's ``allowCrossNamespace``)."""
    web_entrypoints: tuple[str, ...] = ("web",)
    tcp_entrypoints: tuple[str, ...] = ("tcp",)
    route_prefix: str = ""
    """Path prefix of the gateway behind Traefik (``""`` or ``/services/dask-gateway``)."""
    run_as_user: int = 1000
    """UID of scheduler and worker processes (the dask-gateway image's ``dask`` user)."""

    def __post_init__(self) -> None:
        # A hand-edited DaskCluster may carry keys the API server would refuse on every
        # pod create; refusing here makes that an InvalidSpec condition, not a retry loop.
        for attr in _EXTRA_METADATA:
            for key, value in getattr(self, attr).items():
                problem = metadata_key_problem(key) if isinstance(key, str) else f"{key!r}"
                if problem is None and not isinstance(value, str):
                    problem = f"{key!r}: the value must be a string, not {value!r}"
                if problem is None and attr.endswith("_labels"):
                    problem = label_value_problem(value)
                if problem:
                    raise ValueError(f"{attr}: {problem}")

    @property
    def public_name(self) -> str:
        return public_name(self.namespace, self.name)

    @property
    def threads(self) -> int:
        return self.worker_threads or max(int(self.worker_cores), 1)

    @classmethod
    def from_resource(cls, cluster: Mapping[str, Any], **settings: Any) -> ClusterSpec:
        """Combine a DaskCluster object with controller ``settings`` (field names).

        Known ``spec.config`` keys override the defaults; ``settings`` must
        supply at least ``instance``, ``api_url`` and ``dashboard_auth_middleware``
        and win over the resource (they are the operator's, not the user's).
        """
        meta = cluster["metadata"]
        spec = cluster["spec"]
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in (spec.get("config") or {}).items():
            attr = CONFIG_FIELDS.get(key)
            if attr in known:
                values[attr] = value
        if "image_pull_secrets" in values:
            values["image_pull_secrets"] = tuple(s["name"] for s in values["image_pull_secrets"])
        values.update(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            username=spec["username"],
        )
        # the operator's settings win, but for the commands: a cluster's own (its
        # KubeClusterConfig's, written by the service only when not the default) is kept
        commands: dict[str, Any] = {
            k: tuple(values[k]) for k in ("scheduler_cmd", "worker_cmd") if k in values
        }
        values.update(settings)
        values.update(commands)
        return cls(**values)
