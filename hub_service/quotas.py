"""Per-user and per-group limits on clusters, workers, cores and memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traitlets import Dict, Float, Integer, TraitError, Unicode, Union, validate
from traitlets.config import Configurable

from jhub_gateway.models import Cluster, User

from .cluster_config import parse_memory


@dataclass(frozen=True)
class Limits:
    clusters: int | None = None
    workers: int | None = None
    cores: float | None = None
    memory: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "workers": self.workers,
            "cores": self.cores,
            "memory": self.memory,
        }


_LIMIT_KEYS = {"clusters", "workers", "cores", "memory"}


class UserQuotas(Configurable):
    """Limits on what one user may hold at once, across all their active clusters.

    A user in several groups gets, per resource, the most generous of the group
    limits that name it, falling back to the defaults below.
    """

    max_clusters = Integer(
        None,
        allow_none=True,
        min=0,
        help="Most active clusters per user (None = no limit).",
        config=True,
    )
    max_workers = Integer(
        None,
        allow_none=True,
        min=0,
        help="Most workers per user across their clusters.",
        config=True,
    )
    max_cores = Float(
        None, allow_none=True, min=0, help="Most cores per user, schedulers included.", config=True
    )
    max_memory = Union(
        [Integer(), Unicode()],
        default_value=None,
        allow_none=True,
        help="Most memory per user, schedulers included, e.g. '64 G'.",
        config=True,
    )
    group_limits = Dict(
        help="""Limits by JupyterHub group, e.g. ``{"power-users": {"clusters": 5, "cores": 64}}``.

        Keys of each entry: clusters, workers, cores, memory.""",
        config=True,
    )

    @validate("group_limits")
    def _check_groups(self, proposal: dict) -> dict:
        for group, limits in proposal["value"].items():
            if not isinstance(limits, dict) or set(limits) - _LIMIT_KEYS:
                raise TraitError(
                    f"UserQuotas.group_limits[{group!r}] must be a dict with keys among {sorted(_LIMIT_KEYS)}"
                )
            for key in ("clusters", "workers", "cores"):
                value = limits.get(key)
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
                ):
                    raise TraitError(
                        f"UserQuotas.group_limits[{group!r}][{key!r}] must be a non-negative number or None"
                    )
            if limits.get("memory") is not None:
                try:
                    parse_memory(limits["memory"])
                except ValueError as exc:
                    raise TraitError(f"UserQuotas.group_limits[{group!r}]: {exc}") from None
        return proposal["value"]

    @validate("max_memory")
    def _check_memory(self, proposal: dict) -> Any:
        if proposal["value"] is not None:
            try:
                parse_memory(proposal["value"])
            except ValueError as exc:
                raise TraitError(f"UserQuotas.max_memory: {exc}") from None
        return proposal["value"]

    def limits_for(self, user: User) -> Limits:
        values: dict[str, Any] = {
            "clusters": self.max_clusters,
            "workers": self.max_workers,
            "cores": self.max_cores,
            "memory": parse_memory(self.max_memory) if self.max_memory is not None else None,
        }
        for group in sorted(user.groups):
            for key, value in self.group_limits.get(group, {}).items():
                if key == "memory" and value is not None:
                    value = parse_memory(value)
                current = values[key]
                if value is None or (current is not None and value > current) or current is None:
                    values[key] = value
        return Limits(**values)


@dataclass(frozen=True)
class Usage:
    clusters: int
    workers: int
    cores: float
    memory: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "workers": self.workers,
            "cores": self.cores,
            "memory": self.memory,
        }


def cluster_footprint(cluster: Cluster, workers: int) -> tuple[float, int]:
    """Cores and bytes a cluster uses with ``workers`` workers."""
    cfg = cluster.config
    cores = float(cfg.get("scheduler_cores", 1)) + workers * float(cfg.get("worker_cores", 1))
    memory = parse_memory(cfg.get("scheduler_memory", "2 G")) + workers * parse_memory(
        cfg.get("worker_memory", "2 G")
    )
    return cores, memory


def usage_of(clusters: list[Cluster]) -> Usage:
    cores = 0.0
    memory = 0
    workers = 0
    for cluster in clusters:
        c, m = cluster_footprint(cluster, cluster.target_workers)
        cores += c
        memory += m
        workers += cluster.target_workers
    return Usage(clusters=len(clusters), workers=workers, cores=cores, memory=memory)


def workers_allowed(limits: Limits, others: Usage, cluster: Cluster, wanted: int) -> int:
    """The most workers ``cluster`` may have given what the user's other clusters use."""
    allowed = wanted
    per_core, per_mem = cluster_footprint(cluster, 1)
    base_core, base_mem = cluster_footprint(cluster, 0)
    worker_core, worker_mem = per_core - base_core, per_mem - base_mem
    if limits.workers is not None:
        allowed = min(allowed, limits.workers - others.workers)
    if limits.cores is not None and worker_core > 0:
        allowed = min(allowed, int((limits.cores - others.cores - base_core) // worker_core))
    if limits.memory is not None and worker_mem > 0:
        allowed = min(allowed, int((limits.memory - others.memory - base_mem) // worker_mem))
    return max(allowed, 0)
