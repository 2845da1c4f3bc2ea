"""Each cluster's adaptive bounds, as its scheduler last reported them (or as just set).

The scheduler owns adaptive scaling, so its heartbeats are the truth; an adapt or
scale request through this replica updates the record at once, so the answer to
the next listing already shows it. On Kubernetes with several api replicas, a
replica that handled neither learns the bounds at the next heartbeat it receives.
The record lives here and not in the backend's cluster objects, which the
Kubernetes backend rebuilds on every change of the DaskCluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jhub_gateway.models import Cluster

Bounds = dict[str, int | None]


def parse_bounds(value: Any) -> Bounds | None:
    """A heartbeat's ``adaptive`` (from user-controlled code): None, or minimum/maximum.

    Raises ValueError naming what is wrong.
    """
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"minimum", "maximum"}:
        raise ValueError("adaptive must be null or {minimum, maximum}")
    minimum, maximum = value.get("minimum", 0), value.get("maximum")
    for label, number, nullable in (("minimum", minimum, False), ("maximum", maximum, True)):
        if number is None and nullable:
            continue
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"adaptive {label} must be a non-negative integer")
    return {"minimum": minimum, "maximum": maximum}


class AdaptiveBounds:
    """Bounds by cluster name; forgotten with the cluster.

    ``lookup`` finds a cluster by name (the backend's registry). A heartbeat or adapt
    request that was in flight while its cluster ended and was purged would otherwise
    write a record back that nothing ever removes.
    """

    def __init__(self, lookup: Callable[[str], Cluster | None]) -> None:
        self._bounds: dict[str, Bounds] = {}
        self._lookup = lookup

    def set(self, name: str, bounds: Bounds | None) -> None:
        cluster = self._lookup(name)
        if bounds is None or cluster is None or cluster.status.is_terminal:
            self._bounds.pop(name, None)
        else:
            self._bounds[name] = dict(bounds)

    def get(self, cluster: Cluster) -> Bounds | None:
        """The bounds of an active cluster; None when it scales to a fixed count."""
        if not cluster.status.is_active:
            return None
        bounds = self._bounds.get(cluster.name)
        return dict(bounds) if bounds is not None else None

    def observe(self, name: str, cluster: Cluster | None) -> None:
        """A registry observer: drop what belongs to a cluster that ended or went away."""
        if cluster is None or cluster.status.is_terminal:
            self._bounds.pop(name, None)
