"""Per-cluster configuration: what the options handler may override.

Operators set defaults in ``jhub_gateway_config.py`` (``c.ClusterConfig.worker_cores = 2``);
the options handler returns overrides, and ``ClusterConfig(parent=backend, **overrides)``
validates the result, so bad option handlers fail with a clear 422, not a crash later.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, Union, validate
from traitlets.config import Configurable

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


class ClusterConfig(Configurable):
    """Resources, commands and policies of one cluster."""

    keep_after_server_stops = Bool(
        False,
        help="""Keep this cluster running after its owner's JupyterHub server stops.

        Off by default: clusters stop a grace period after the owner's server
        (``ServerWatch``). Expose it as a cluster option to let users opt out; an
        operator forbids opting out with ``c.ServerWatch.allow_opt_out = False``.""",
        config=True,
    )
    scheduler_cmd = Union(
        [Unicode(), List(Unicode())],
        default_value=["dask", "scheduler"],
        help="""Command that starts a Dask scheduler (a string is split like a shell would).

        The old ``dask-scheduler`` script no longer ships with distributed; use
        ``dask scheduler`` or ``python -m distributed.cli.dask_scheduler``.""",
        config=True,
    )
    worker_cmd = Union(
        [Unicode(), List(Unicode())],
        default_value=["dask", "worker"],
        help="Command that starts a Dask worker (``dask worker``).",
        config=True,
    )
    environment = Dict(
        Unicode(),
        help="Extra environment variables for schedulers and workers.",
        config=True,
    )
    worker_cores = Float(
        1,
        min=0.001,
        help="Cores per worker (its thread count when worker_threads is 0).",
        config=True,
    )
    worker_threads = Integer(
        0, min=0, help="Threads per worker; 0 means one per core (at least 1).", config=True
    )
    worker_memory = Union(
        [Integer(), Unicode()],
        default_value="2 G",
        help="Memory limit per worker, e.g. '4 G'.",
        config=True,
    )
    scheduler_cores = Float(1, min=0.001, help="Cores reserved for the scheduler.", config=True)
    scheduler_memory = Union(
        [Integer(), Unicode()],
        default_value="2 G",
        help="Memory reserved for the scheduler.",
        config=True,
    )
    adaptive_period = Float(
        3.0, min=0.1, help="Seconds between adaptive scaling decisions.", config=True
    )
    idle_timeout = Float(
        1800.0,
        min=0,
        help="""Stop a cluster after this many seconds without work (0 = never).

        On by default (30 minutes): a forgotten cluster costs as much as a busy one.
        Work means tasks queued, processing or waiting for workers. The service
        judges it from the scheduler's heartbeats, bounded by ``IdlePolicy``.""",
        config=True,
    )
    max_lifetime = Float(
        0.0,
        min=0,
        help="Stop a cluster this many seconds after it started, whatever it does (0 = no limit).",
        config=True,
    )
    cluster_max_workers = Integer(
        None,
        allow_none=True,
        min=0,
        help="Most workers one cluster may have (None = no limit).",
        config=True,
    )
    cluster_max_cores = Float(
        None,
        allow_none=True,
        min=0,
        help="Most cores one cluster may use, scheduler included.",
        config=True,
    )
    cluster_max_memory = Union(
        [Integer(), Unicode()],
        default_value=None,
        allow_none=True,
        help="Most memory one cluster may use, scheduler included, e.g. '64 G'.",
        config=True,
    )
    scheduler_start_timeout = Float(
        60.0,
        min=1,
        help="Seconds a scheduler may take to report in before the cluster FAILS.",
        config=True,
    )
    worker_start_timeout = Float(
        60.0,
        min=1,
        help="Seconds a worker may take to connect before it is replaced (and counted as a failure).",
        config=True,
    )

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
