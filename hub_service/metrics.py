"""Prometheus metrics of the service: requests, clusters, starts, hub auth.

Each service instance owns its registry, so two services in one process (tests,
embedding) never share series. Cluster gauges are read at scrape time from the
service layer rather than kept up to date on every change: a scrape costs one
pass over the clusters this replica knows, and nothing costs anything between
scrapes. Start outcomes are counted where a cluster changes (the backend's change
notifications, :meth:`ServiceMetrics.observe_cluster`), so a cluster that starts
and is purged between two scrapes still counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from traitlets import Bool, Unicode, default
from traitlets.config import Configurable

from jhub_gateway import redact
from jhub_gateway.bearer import secret_matches
from jhub_gateway.models import Cluster, ClusterStatus

from .quotas import Footprint

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

#: seconds; a cluster start spans process spawn to route live, so the buckets reach minutes
START_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: request label sets whose series are kept at hand (methods are the client's to choose)
_MAX_REQUEST_CHILDREN = 512
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HUB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

#: event kinds that mark a cluster becoming usable: the local backend's state change,
#: the Kubernetes controller's Ready condition
RUNNING_EVENTS = frozenset({ClusterStatus.RUNNING.name, "Ready=True"})
_FAILED_REASON_MAX = 64  # reasons are identifiers; anything longer is not one


class ServiceMetrics(Configurable):
    """What ``/metrics`` exposes and who may read it."""

    token = Unicode(
        "",
        help="""A bearer token that may read /metrics (``Authorization: Bearer <token>``;
        default: env JHUB_GATEWAY_METRICS_TOKEN, which the Helm chart sets).

        For a Prometheus that has no JupyterHub token. Empty (the default): only hub
        tokens holding the ``read:metrics`` scope may scrape, unless ``public`` is set.""",
        config=True,
    )
    public = Bool(
        False,
        help="Serve /metrics to anyone, unauthenticated. Only for a network no user can reach.",
        config=True,
    )
    per_user = Bool(
        False,
        help="""Also export per-user series (clusters, workers, cores, memory by user).

        Off by default: one series per user grows with the hub and names users.""",
        config=True,
    )

    @default("token")
    def _token_from_env(self) -> str:
        token = os.environ.get("JHUB_GATEWAY_METRICS_TOKEN", "")
        redact.register_secret(token)
        return token

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "jhub_gateway_http_requests",
            "API requests served, by handler, method and status code.",
            ["handler", "method", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "jhub_gateway_http_request_duration_seconds",
            "Time to answer an API request, by handler and method.",
            ["handler", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.clusters = Gauge(
            "jhub_gateway_clusters", "Clusters this replica knows, by state.", ["state"], registry=r
        )
        self.workers = Gauge(
            "jhub_gateway_active_workers", "Workers of running clusters (requested).", registry=r
        )
        self.cores = Gauge(
            "jhub_gateway_active_cores",
            "Cores held by active clusters, schedulers included.",
            registry=r,
        )
        self.memory = Gauge(
            "jhub_gateway_active_memory_bytes",
            "Memory held by active clusters, schedulers included.",
            registry=r,
        )
        self.starts = Counter(
            "jhub_gateway_cluster_starts",
            "Cluster starts that ended, by outcome (running, failed) and reason. Counted by "
            "each replica that saw the cluster pending and then running or failed (on "
            "Kubernetes every api replica watches every cluster, so each counts it).",
            ["outcome", "reason"],
            registry=r,
        )
        self.start_seconds = Histogram(
            "jhub_gateway_cluster_start_duration_seconds",
            "Time from a cluster's creation until it was running.",
            buckets=START_BUCKETS,
            registry=r,
        )
        self.auth_cache = Counter(
            "jhub_gateway_hub_auth_cache",
            "Hub token lookups answered from the cache (hit) or by asking the hub (miss).",
            ["result"],
            registry=r,
        )
        self.hub_seconds = Histogram(
            "jhub_gateway_hub_request_duration_seconds",
            "Time the hub took to answer token lookups, by status code (599: unreachable).",
            ["code"],
            buckets=HUB_BUCKETS,
            registry=r,
        )
        self.user_series: tuple[Gauge, ...] = ()
        if self.per_user:
            self.user_series = tuple(
                Gauge(
                    f"jhub_gateway_user_{what}",
                    f"Active {what} of each user.",
                    ["user"],
                    registry=r,
                )
                for what in ("clusters", "workers", "cores", "memory_bytes")
            )
        # clusters seen pending, whose start outcome is still to come
        self._starting: set[str] = set()
        # clusters whose start was counted, or that this process first saw past their start;
        # both sets lose a cluster when the backend forgets it
        self._start_decided: set[str] = set()
        for state in ClusterStatus:
            self.clusters.labels(state.name.lower())
        for result in ("hit", "miss"):
            self.auth_cache.labels(result)
        # (handler, method, code) -> its two series: labels() takes a lock and builds a
        # tuple key on every call, on the path of every request
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._auth_children = {
            hit: self.auth_cache.labels("hit" if hit else "miss") for hit in (True, False)
        }

    # -- observers ----------------------------------------------------------------------

    def observe_request(self, handler: str, method: str, code: int, seconds: float) -> None:
        if method not in _KNOWN_METHODS:
            method = "other"  # the client's string: as a label, it would grow series forever
        key = (handler, method, code)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(handler, method, str(code)),
                self.request_seconds.labels(handler, method),
            )
            if len(self._request_children) < _MAX_REQUEST_CHILDREN:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_auth_cache(self, hit: bool) -> None:
        self._auth_children[hit].inc()

    def observe_hub_request(self, code: int, seconds: float) -> None:
        self.hub_seconds.labels(str(code)).observe(seconds)

    # -- scrape -------------------------------------------------------------------------

    def may_scrape(self, bearer: str | None) -> bool:
        """Whether a request with this bearer token may read metrics without a hub scope."""
        return self.public or secret_matches(self.token, bearer)

    def refresh(self, census: Iterable[tuple[Cluster, Footprint]]) -> None:
        """Bring the cluster gauges up to date with what the service knows."""
        by_state = dict.fromkeys(ClusterStatus, 0)
        workers = 0
        cores = 0.0
        memory = 0
        per_user: dict[str, list[float]] = {}
        for cluster, footprint in census:
            by_state[cluster.status] += 1
            if cluster.status.is_active:
                workers += footprint.workers
                cores += footprint.cores
                memory += footprint.memory
                if self.user_series:
                    row = per_user.setdefault(cluster.username, [0, 0, 0.0, 0])
                    row[0] += 1
                    row[1] += footprint.workers
                    row[2] += footprint.cores
                    row[3] += footprint.memory
        for state, count in by_state.items():
            self.clusters.labels(state.name.lower()).set(count)
        self.workers.set(workers)
        self.cores.set(cores)
        self.memory.set(memory)
        for gauge in self.user_series:
            gauge.clear()
        for user, row in per_user.items():
            for gauge, value in zip(self.user_series, row, strict=True):
                gauge.labels(user).set(value)

    def observe_cluster(self, name: str, cluster: Cluster | None) -> None:
        """Count a start's outcome when a change shows it (called on every cluster change).

        Only starts this process watched count: a cluster first seen already running or
        ended (re-adopted after a restart, listed by a new replica) started under another.
        """
        if cluster is None:  # forgotten (purged): nothing more will happen to it
            self._starting.discard(name)
            self._start_decided.discard(name)
            return
        if name in self._start_decided:
            return
        running = next((e for e in cluster.events if e.kind in RUNNING_EVENTS), None)
        if name not in self._starting:
            if cluster.status == ClusterStatus.PENDING and running is None:
                self._starting.add(name)
            else:
                self._start_decided.add(name)
            return
        if running is not None or cluster.status == ClusterStatus.RUNNING:
            ran_at = running.time if running is not None else time.time()
            self.starts.labels("running", "Started").inc()
            self.start_seconds.observe(max(0.0, ran_at - cluster.start_time / 1000.0))
        elif cluster.status == ClusterStatus.FAILED:
            self.starts.labels("failed", _reason_label(cluster.reason)).inc()
        elif not cluster.status.is_terminal:
            return  # still starting (or stopping on its way to failing)
        # stopped before it ever ran: not a start that ended, and never counted later
        self._starting.discard(name)
        self._start_decided.add(name)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _reason_label(reason: str) -> str:
    if reason and len(reason) <= _FAILED_REASON_MAX and reason.replace("_", "").isalnum():
        return reason
    return "Other"
