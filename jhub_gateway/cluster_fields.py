"""The settings every cluster has, defined once: name, stored key, kind, default, help.

The service's ``ClusterConfig`` builds its traits from this table, and the
table's keys are the ``spec.config`` keys of a DaskCluster
(:data:`jhub_gateway.crd.CONFIG_FIELDS`), which the controller's ``ClusterSpec``
reads. Memory defaults are in bytes and times in seconds, as they are stored.
Backend-specific settings (the Kubernetes image, pod extras) are not here.
Pure data: no traitlets, so the core stays importable without the server extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FIELDS", "ClusterField", "Kind", "field"]

GIB = 2**30

#: How a setting is read and checked:
#: ``command`` a command line (a string or a list of words); ``environment``
#: variable name -> value; ``cores`` a positive number of cores; ``threads`` a
#: thread count (0 = one per core); ``memory`` a size in bytes (or "2 G");
#: ``seconds`` a duration >= 0 (0 = off); ``timeout`` a duration >= 1;
#: ``period`` a duration > 0; ``count`` an integer >= 0; ``flag`` true or false.
Kind = Literal[
    "command",
    "environment",
    "cores",
    "threads",
    "memory",
    "seconds",
    "timeout",
    "period",
    "count",
    "flag",
]


@dataclass(frozen=True)
class ClusterField:
    name: str
    """Attribute name: the ``ClusterConfig`` trait and the ``ClusterSpec`` field."""
    key: str | None
    """camelCase key in a DaskCluster's ``spec.config``; None if not stored there."""
    kind: Kind
    default: Any
    help: str
    optional: bool = False
    """None is allowed and means "no limit"."""


FIELDS: tuple[ClusterField, ...] = (
    ClusterField(
        "scheduler_cmd",
        "schedulerCmd",
        "command",
        ("dask", "scheduler"),
        """Command that starts a Dask scheduler (a string is split like a shell would).

        The old ``dask-scheduler`` script no longer ships with distributed; use
        ``dask scheduler`` or ``python -m distributed.cli.dask_scheduler``.""",
    ),
    ClusterField(
        "worker_cmd",
        "workerCmd",
        "command",
        ("dask", "worker"),
        "Command that starts a Dask worker (``dask worker``).",
    ),
    ClusterField(
        "environment",
        "environment",
        "environment",
        {},
        "Extra environment variables for schedulers and workers.",
    ),
    ClusterField(
        "worker_cores",
        "workerCores",
        "cores",
        1.0,
        "Cores per worker (its thread count when worker_threads is 0).",
    ),
    ClusterField(
        "worker_threads",
        "workerThreads",
        "threads",
        0,
        "Threads per worker; 0 means one per core (at least 1).",
    ),
    ClusterField(
        "worker_memory", "workerMemory", "memory", 2 * GIB, "Memory limit per worker, e.g. '4 G'."
    ),
    ClusterField(
        "scheduler_cores", "schedulerCores", "cores", 1.0, "Cores reserved for the scheduler."
    ),
    ClusterField(
        "scheduler_memory",
        "schedulerMemory",
        "memory",
        2 * GIB,
        "Memory reserved for the scheduler.",
    ),
    ClusterField(
        "adaptive_period",
        "adaptivePeriod",
        "period",
        3.0,
        "Seconds between adaptive scaling decisions.",
    ),
    ClusterField(
        "idle_timeout",
        "idleTimeout",
        "seconds",
        1800.0,
        """Stop a cluster after this many seconds without work (0 = never).

        On by default (30 minutes): a forgotten cluster costs as much as a busy one.
        Work means tasks queued, processing or waiting for workers. The service
        judges it from the scheduler's heartbeats, bounded by ``IdlePolicy``.""",
    ),
    ClusterField(
        "keep_after_server_stops",
        "keepAfterServerStops",
        "flag",
        False,
        """Keep this cluster running after its owner's JupyterHub server stops.

        Off by default: clusters stop a grace period after the owner's server
        (``ServerWatch``). Expose it as a cluster option to let users opt out; an
        operator forbids opting out with ``c.ServerWatch.allow_opt_out = False``.""",
    ),
    ClusterField(
        "max_lifetime",
        "maxLifetime",
        "seconds",
        0.0,
        "Stop a cluster this many seconds after it started, whatever it does (0 = no limit).",
    ),
    ClusterField(
        "cluster_max_workers",
        "clusterMaxWorkers",
        "count",
        None,
        "Most workers one cluster may have (None = no limit).",
        optional=True,
    ),
    ClusterField(
        "cluster_max_cores",
        "clusterMaxCores",
        "cores",
        None,
        "Most cores one cluster may use, scheduler included.",
        optional=True,
    ),
    ClusterField(
        "cluster_max_memory",
        "clusterMaxMemory",
        "memory",
        None,
        "Most memory one cluster may use, scheduler included, e.g. '64 G'.",
        optional=True,
    ),
    ClusterField(
        "scheduler_start_timeout",
        "schedulerStartTimeout",
        "timeout",
        60.0,
        "Seconds a scheduler may take to report in before the cluster FAILS.",
    ),
    ClusterField(
        "worker_start_timeout",
        "workerStartTimeout",
        "timeout",
        60.0,
        "Seconds a worker may take to connect before it is replaced (and counted as a failure).",
    ),
)

_BY_NAME: Mapping[str, ClusterField] = {f.name: f for f in FIELDS}


def field(name: str) -> ClusterField:
    """The field called ``name``; ``KeyError`` names it if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no cluster field {name!r}") from None
