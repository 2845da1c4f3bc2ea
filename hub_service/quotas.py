"""Per-user and per-group limits on clusters, workers, cores and memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traitlets import Dict, Float, Integer, TraitError, Unicode, Union, validate
from traitlets.config import Configurable

from jhub_gateway.models import User

from .cluster_config import ClusterConfig, parse_memory


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


@dataclass(frozen=True)
class Footprint:
    """What one cluster holds: its scheduler plus ``workers`` workers."""

    scheduler_cores: float
    scheduler_memory: int
    worker_cores: float
    worker_memory: int
    workers: int

    @classmethod
    def of(cls, config: ClusterConfig, workers: int) -> Footprint:
        return cls(
            scheduler_cores=float(config.scheduler_cores),
            scheduler_memory=parse_memory(config.scheduler_memory),
            worker_cores=float(config.worker_cores),
            worker_memory=parse_memory(config.worker_memory),
            workers=workers,
        )

    @property
    def cores(self) -> float:
        return self.scheduler_cores + self.workers * self.worker_cores

    @property
    def memory(self) -> int:
        return self.scheduler_memory + self.workers * self.worker_memory


def usage_of(footprints: list[Footprint]) -> Usage:
    return Usage(
        clusters=len(footprints),
        workers=sum(f.workers for f in footprints),
        cores=sum(f.cores for f in footprints),
        memory=sum(f.memory for f in footprints),
    )


def workers_allowed(limits: Limits, others: Usage, cluster: Footprint, wanted: int) -> int:
    """The most workers ``cluster`` may have (up to ``wanted``) given the user's other clusters."""
    allowed = wanted
    if limits.workers is not None:
        allowed = min(allowed, limits.workers - others.workers)
    if limits.cores is not None and cluster.worker_cores > 0:
        spare = limits.cores - others.cores - cluster.scheduler_cores
        allowed = min(allowed, int(spare // cluster.worker_cores))
    if limits.memory is not None and cluster.worker_memory > 0:
        spare_memory = limits.memory - others.memory - cluster.scheduler_memory
        allowed = min(allowed, int(spare_memory // cluster.worker_memory))
    return max(allowed, 0)
