"""Per-cluster configuration: what the options handler may override.

Operators set defaults in ``jhub_gateway_config.py`` (``c.ClusterConfig.worker_cores = 2``);
the options handler returns overrides, and ``ClusterConfig(parent=backend, **overrides)``
validates the result, so bad option handlers fail with a clear 422, not a crash later.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from traitlets import (
    Bool,
    Dict,
    Float,
    Integer,
    List,
    TraitError,
    TraitType,
    Unicode,
    Union,
    validate,
)
from traitlets.config import Configurable

from jhub_gateway import cluster_fields

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(value: Any) -> int:
    """Parse ``"2 G"``, ``"512M"``, ``"1.5GiB"`` or an int of bytes into bytes."""
    if isinstance(value, bool):
        raise ValueError(f"memory must be a size like '2 G', not {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"memory must be a positive size like '2 G', not {value!r}")
        return int(value)
    text = str(value).strip().upper().replace("IB", "").replace("B", "")
    number = text.rstrip("KMGT ").strip()
    unit = text[len(number) :].strip()
    if unit not in _UNITS:
        raise ValueError(f"memory must be a size like '2 G' or '512 M', not {value!r}")
    try:
        size = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"memory must be a size like '2 G' or '512 M', not {value!r}") from None
    if not math.isfinite(size) or size <= 0:
        raise ValueError(f"memory must be a positive size like '2 G', not {value!r}")
    return int(size)


def _trait(name: str) -> TraitType:
    """The trait of core field ``name`` (its default, bounds and help come from the core)."""
    spec = cluster_fields.field(name)
    common: dict[str, Any] = {"help": spec.help, "config": True}
    if spec.optional:
        common["allow_none"] = True
    kind, default = spec.kind, spec.default
    if kind == "command":
        return Union([Unicode(), List(Unicode())], default_value=list(default), **common)
    if kind == "environment":
        return Dict(Unicode(), default_value=dict(default), **common)
    if kind == "memory":
        return Union([Integer(), Unicode()], default_value=default, **common)
    if kind == "flag":
        return Bool(bool(default), **common)
    if kind == "count":
        return Integer(default, min=0, **common)
    if kind == "threads":
        return Integer(default, min=0, **common)
    bounds = {"cores": 0 if spec.optional else 0.001, "seconds": 0, "timeout": 1, "period": 0.1}
    return Float(default, min=bounds[kind], **common)


class ClusterConfig(Configurable):
    """Resources, commands and policies of one cluster (the fields of
    :mod:`jhub_gateway.cluster_fields`, one trait each)."""

    scheduler_cmd = _trait("scheduler_cmd")
    worker_cmd = _trait("worker_cmd")
    environment = _trait("environment")
    worker_cores = _trait("worker_cores")
    worker_threads = _trait("worker_threads")
    worker_memory = _trait("worker_memory")
    scheduler_cores = _trait("scheduler_cores")
    scheduler_memory = _trait("scheduler_memory")
    adaptive_period = _trait("adaptive_period")
    idle_timeout = _trait("idle_timeout")
    keep_after_server_stops = _trait("keep_after_server_stops")
    max_lifetime = _trait("max_lifetime")
    cluster_max_workers = _trait("cluster_max_workers")
    cluster_max_cores = _trait("cluster_max_cores")
    cluster_max_memory = _trait("cluster_max_memory")
    scheduler_start_timeout = _trait("scheduler_start_timeout")
    worker_start_timeout = _trait("worker_start_timeout")

    @validate("worker_memory", "scheduler_memory", "cluster_max_memory")
    def _check_memory(self, proposal: dict) -> Any:
        if proposal["value"] is not None:
            try:
                parse_memory(proposal["value"])
            except ValueError as exc:
                raise TraitError(f"{proposal['trait'].name}: {exc}") from None
        return proposal["value"]

    def command(self, which: str) -> list[str]:
        value = self.scheduler_cmd if which == "scheduler" else self.worker_cmd
        return shlex.split(value) if isinstance(value, str) else list(value)

    @property
    def threads(self) -> int:
        return self.worker_threads or max(int(self.worker_cores), 1)

    def max_workers(self) -> int | None:
        """The tightest of the worker, core and memory limits, as a worker count."""
        limits = []
        if self.cluster_max_workers is not None:
            limits.append(self.cluster_max_workers)
        if self.cluster_max_cores is not None:
            limits.append(int((self.cluster_max_cores - self.scheduler_cores) // self.worker_cores))
        if self.cluster_max_memory is not None:
            spare = parse_memory(self.cluster_max_memory) - parse_memory(self.scheduler_memory)
            limits.append(int(spare // parse_memory(self.worker_memory)))
        return max(min(limits), 0) if limits else None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.trait_names(config=True)}
