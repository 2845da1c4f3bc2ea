"""What the pages show, as JSON-ready dicts: pure functions of clusters (no Tornado)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jhub_gateway.models import Cluster, ClusterStatus

from ..quotas import Footprint

LAST_EVENTS = 5
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50

ALL_STATUSES = frozenset(ClusterStatus)

FootprintOf = Callable[[Cluster], Footprint]


def cluster_row(cluster: Cluster, footprint: Footprint, prefix: str) -> dict[str, Any]:
    """One cluster as a page row (no credentials: the pages never need them)."""
    route = cluster.dashboard_route
    return {
        "name": cluster.name,
        "username": cluster.username,
        "status": cluster.status.name,
        "reason": cluster.reason,
        "message": cluster.message,
        "workers": {"requested": cluster.target_workers, "active": cluster.active_workers},
        "cores": footprint.cores,
        "memory": footprint.memory,
        "start_time": cluster.start_time,
        "stop_time": cluster.stop_time,
        "dashboard_url": prefix.rstrip("/") + route if route else None,
        "events": [e.to_dict() for e in cluster.events[-LAST_EVENTS:]],
    }


def rows(clusters: Iterable[Cluster], footprint_of: FootprintOf, prefix: str) -> list[dict]:
    ordered = sorted(clusters, key=lambda c: (c.start_time, c.name))
    return [cluster_row(c, footprint_of(c), prefix) for c in ordered]


@dataclass(frozen=True)
class OverviewQuery:
    """One view of All clusters: a user-name filter, states, and a page."""

    user: str = ""
    statuses: frozenset[ClusterStatus] = frozenset({ClusterStatus.PENDING, ClusterStatus.RUNNING})
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE


def parse_page(raw: str | None, default: int, maximum: int, label: str) -> int:
    """A positive integer query argument, or ValueError with a message for the caller."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{label} must be a positive integer, got {raw[:20]!r}")
    return min(int(raw), maximum)


def overview(
    clusters: Iterable[Cluster], footprint_of: FootprintOf, query: OverviewQuery, prefix: str
) -> dict[str, Any]:
    """Totals per user and one page of clusters, ordered by user then age."""
    needle = query.user.casefold()
    chosen = sorted(
        (c for c in clusters if needle in c.username.casefold()),
        key=lambda c: (c.username, c.start_time, c.name),
    )
    footprints = {c.name: footprint_of(c) for c in chosen}
    users: dict[str, dict[str, Any]] = {}
    for c in chosen:
        fp = footprints[c.name]
        total = users.setdefault(
            c.username,
            {"name": c.username, "clusters": 0, "workers": 0, "cores": 0.0, "memory": 0},
        )
        total["clusters"] += 1
        total["workers"] += c.active_workers
        total["cores"] += fp.cores
        total["memory"] += fp.memory
    pages = max(1, math.ceil(len(chosen) / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    shown = chosen[start : start + query.per_page]
    return {
        "users": list(users.values()),
        "clusters": [cluster_row(c, footprints[c.name], prefix) for c in shown],
        "total": len(chosen),
        "page": page,
        "pages": pages,
        "per_page": query.per_page,
        "filter": {
            "user": query.user,
            "status": sorted(s.name for s in query.statuses),
        },
    }
