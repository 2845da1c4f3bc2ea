"""``KubeClusterConfig``: pod settings of one cluster, with upstream's trait names.

Operators' ``c.KubeClusterConfig.*`` lines and ``gateway.backend`` chart values
written for dask-gateway keep their meaning here. The validated config is
stored in the DaskCluster's ``spec.config`` with the camelCase keys of
:data:`jhub_gateway.crd.CONFIG_FIELDS` (memory in bytes), which is all the
controller reads; :func:`to_spec_config` and :func:`from_spec_config` convert
both ways, so any api replica rebuilds the same config from the object alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from traitlets import (
    Dict,
    Float,
    Integer,
    List,
    TraitError,
    Unicode,
    Union,
    default,
    validate,
)

from jhub_gateway import __version__, cluster_fields
from jhub_gateway.crd import CONFIG_FIELDS, label_value_problem, metadata_key_problem
from jhub_gateway.names import is_valid_cluster_name

from ...cluster_config import ClusterConfig, parse_memory

__all__ = ["DEFAULT_IMAGE", "KubeClusterConfig", "from_spec_config", "to_spec_config"]

DEFAULT_IMAGE = f"ghcr.io/jhub-gateway/jhub-gateway-cluster:{__version__}"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
GIB = 2**30  # defaults are not validated: give them in bytes already
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_MEMORY_TRAITS = (
    "scheduler_memory",
    "scheduler_memory_limit",
    "worker_memory",
    "worker_memory_limit",
    "cluster_max_memory",
)
_EXTRA_CONFIGS = (
    "scheduler_extra_pod_config",
    "scheduler_extra_container_config",
    "worker_extra_pod_config",
    "worker_extra_container_config",
)
_EXTRA_METADATA = (
    "scheduler_extra_pod_labels",
    "scheduler_extra_pod_annotations",
    "worker_extra_pod_labels",
    "worker_extra_pod_annotations",
)
_INVERSE = {attr: key for key, attr in CONFIG_FIELDS.items()}
_COMMANDS = {"scheduler_cmd": "scheduler", "worker_cmd": "worker"}


def default_namespace() -> str:
    """The pod's own namespace (``POD_NAMESPACE``, else the service account's), else ``default``."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _memory(default_value: Any, help: str, allow_none: bool = False) -> Union:
    # Real configs pass "4G", "2 G", "7.235G", "%fG" % x, and ints or floats of bytes.
    return Union(
        [Integer(), Float(), Unicode()],
        default_value=default_value,
        allow_none=allow_none,
        help=help,
        config=True,
    )


def _json_object(help: str) -> Dict:
    return Dict(help=help, config=True)


class KubeClusterConfig(ClusterConfig):
    """Scheduler and worker pod settings (``c.KubeClusterConfig``), upstream's names and meanings.

    Memory traits accept sizes such as ``"4G"``, ``"2 G"``, ``"7.235G"`` or a
    number of bytes, and are stored as whole bytes. A limit of 0 means "the same
    as the request".
    """

    image = Unicode(
        DEFAULT_IMAGE,
        help="Container image of schedulers and workers; it must provide ``dask`` and jhub-gateway.",
        config=True,
    )
    image_pull_policy = Unicode(
        None,
        allow_none=True,
        help="Image pull policy: Always, IfNotPresent or Never (None: the cluster's default).",
        config=True,
    )
    image_pull_secrets: List[Any] = List(
        help="""Secrets for pulling the image: ``[{"name": "regcred"}]`` (plain names work too).""",
        config=True,
    )
    namespace = Unicode(
        help="Namespace of the cluster's DaskCluster and pods (default: the backend's namespace).",
        config=True,
    )
    scheduler_cores_limit = Float(
        0.0, min=0, help="CPU limit of the scheduler; 0 = scheduler_cores.", config=True
    )
    scheduler_memory = _memory(2 * GIB, "Memory requested by the scheduler, e.g. '2 G'.")
    scheduler_memory_limit = _memory(0, "Memory limit of the scheduler; 0 = scheduler_memory.")
    worker_cores_limit = Float(
        0.0, min=0, help="CPU limit of each worker; 0 = worker_cores.", config=True
    )
    worker_memory = _memory(2 * GIB, "Memory requested by each worker, e.g. '4 G'.")
    worker_memory_limit = _memory(0, "Memory limit of each worker; 0 = worker_memory.")
    worker_threads = Integer(  # type: ignore[assignment]
        0,
        allow_none=True,
        min=0,
        help="Threads per worker; 0 or None = max(int(worker_cores), 1).",
        config=True,
    )
    cluster_max_memory = _memory(
        None, "Most memory one cluster may use, scheduler included, e.g. '64 G'.", True
    )
    scheduler_extra_pod_config = _json_object(
        "Deep-merged into the scheduler PodSpec (camelCase keys; these values win, lists are appended)."
    )
    scheduler_extra_container_config = _json_object(
        "Deep-merged into the scheduler container (camelCase keys; these values win, lists are appended)."
    )
    worker_extra_pod_config = _json_object(
        "Deep-merged into each worker PodSpec (camelCase keys; these values win, lists are appended)."
    )
    worker_extra_container_config = _json_object(
        "Deep-merged into each worker container (camelCase keys; these values win, lists are appended)."
    )
    scheduler_extra_pod_labels = Dict(
        Unicode(), help="Extra labels on scheduler pods.", config=True
    )
    scheduler_extra_pod_annotations = Dict(
        Unicode(), help="Extra annotations on scheduler pods.", config=True
    )
    worker_extra_pod_labels = Dict(Unicode(), help="Extra labels on worker pods.", config=True)
    worker_extra_pod_annotations = Dict(
        Unicode(), help="Extra annotations on worker pods.", config=True
    )

    @default("namespace")
    def _default_namespace(self) -> str:
        parent_namespace = getattr(self.parent, "namespace", None)
        return parent_namespace if isinstance(parent_namespace, str) else default_namespace()

    @validate(*_MEMORY_TRAITS)
    def _check_memory(self, proposal: dict) -> Any:  # replaces ClusterConfig's: store bytes
        value = proposal["value"]
        if value is None:
            return None
        name = proposal["trait"].name
        if name.endswith("_limit") and not isinstance(value, str) and value == 0:
            return 0
        try:
            return parse_memory(value)
        except ValueError as exc:
            raise TraitError(f"KubeClusterConfig.{name}: {exc}") from None

    @validate("worker_threads")
    def _threads(self, proposal: dict) -> int:
        return proposal["value"] or 0

    @validate("image")
    def _image(self, proposal: dict) -> str:
        if not proposal["value"].strip():
            raise TraitError("KubeClusterConfig.image must not be empty")
        return proposal["value"]

    @validate("image_pull_policy")
    def _pull_policy(self, proposal: dict) -> str | None:
        value = proposal["value"]
        if value not in (None, *PULL_POLICIES):
            raise TraitError(
                f"KubeClusterConfig.image_pull_policy must be one of {', '.join(PULL_POLICIES)} "
                f"or None, not {value!r}"
            )
        return value

    @validate("image_pull_secrets")
    def _pull_secrets(self, proposal: dict) -> list[dict[str, str]]:
        secrets = []
        for item in proposal["value"]:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not is_valid_cluster_name(name) or "." in name:
                raise TraitError(
                    "KubeClusterConfig.image_pull_secrets entries must be Secret names or "
                    f'{{"name": <secret name>}}, not {item!r}'
                )
            secrets.append({"name": name})
        return secrets

    @validate("namespace")
    def _namespace(self, proposal: dict) -> str:
        value = proposal["value"]
        if not is_valid_cluster_name(value) or "." in value:
            raise TraitError(f"KubeClusterConfig.namespace must be a DNS label, not {value!r}")
        return value

    @validate(*_EXTRA_CONFIGS)
    def _extra_config(self, proposal: dict) -> dict:
        name = proposal["trait"].name
        value = proposal["value"]
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TraitError(f"KubeClusterConfig.{name} must be plain JSON data") from None
        snake = sorted(k for k in value if not isinstance(k, str) or "_" in k)
        if snake:
            # Kubernetes field names never contain "_": this is a snake_case slip
            # that the API server would silently drop.
            raise TraitError(
                f"KubeClusterConfig.{name}: keys must be camelCase Kubernetes field names "
                f"(e.g. nodeSelector), not {snake}"
            )
        return value

    @validate(*_EXTRA_METADATA)
    def _extra_metadata(self, proposal: dict) -> dict[str, str]:
        # The API server would refuse every pod with such a key: say so before creating.
        name = proposal["trait"].name
        for key, value in proposal["value"].items():
            problem = metadata_key_problem(key)
            if problem is None and name.endswith("_labels"):
                problem = label_value_problem(value)
            if problem:
                raise TraitError(f"KubeClusterConfig.{name}: {problem}")
        return proposal["value"]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["image_pull_secrets"] = [dict(s) for s in self.image_pull_secrets]
        return data


def to_spec_config(config: KubeClusterConfig) -> dict[str, Any]:
    """``spec.config`` of a DaskCluster: the CRD's camelCase keys, memory in bytes."""
    spec: dict[str, Any] = {}
    for attr, key in _INVERSE.items():
        if not config.has_trait(attr):
            continue
        value = getattr(config, attr)
        if value is None:
            continue  # the CRD schema has no nulls; absent = the controller's default
        if attr in _COMMANDS:
            value = config.command(_COMMANDS[attr])
            if tuple(value) == tuple(cluster_fields.field(attr).default):
                continue  # the default: the controller's own command applies
        if attr in _MEMORY_TRAITS:
            value = parse_memory(value) if value else 0
        if isinstance(value, dict):
            value = json.loads(json.dumps(value))
        elif isinstance(value, list):
            value = [dict(v) if isinstance(v, dict) else v for v in value]
        spec[key] = value
    return spec


def from_spec_config(spec_config: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Keyword arguments for ``KubeClusterConfig`` from a stored ``spec.config``.

    Unknown keys (a newer writer) are ignored, so an older replica still reads the object.
    """
    values: dict[str, Any] = {
        CONFIG_FIELDS[key]: value for key, value in spec_config.items() if key in CONFIG_FIELDS
    }
    values["namespace"] = namespace
    return values
