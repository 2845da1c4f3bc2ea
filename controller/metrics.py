"""Prometheus metrics of the controller, served on its health port at ``/metrics``.

Reconcile duration and outcome, work queue depth and retries, API requests by verb
and status, and whether this replica leads. One registry per controller, so tests
running several in one process never share series.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jhub_gateway.bearer import bearer_token, secret_matches

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconcile_seconds = Histogram(
            "jhub_gateway_controller_reconcile_duration_seconds",
            "Time one reconcile of a DaskCluster took, by outcome (ok, error).",
            ["outcome"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "jhub_gateway_controller_reconcile_retries",
            "Reconciles queued again after a failure, by cause (conflict, throttled, error).",
            ["cause"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "jhub_gateway_controller_queue_depth",
            "DaskClusters waiting to be reconciled (0 when not leading).",
            registry=r,
        )
        self.api_requests = Counter(
            "jhub_gateway_controller_api_requests",
            "Kubernetes API requests, by verb and status (2xx, the error code, none).",
            ["verb", "code"],
            registry=r,
        )
        self.leader = Gauge(
            "jhub_gateway_controller_leader", "1 while this replica leads, else 0.", registry=r
        )
        self.clusters = Gauge(
            "jhub_gateway_controller_clusters", "DaskClusters in the informer cache.", registry=r
        )
        for outcome in ("ok", "error"):
            self.reconcile_seconds.labels(outcome)

    def observe_api(self, verb: str, code: str) -> None:
        self.api_requests.labels(verb, code).inc()

    def render(
        self, queue_depth: Callable[[], int], leading: Callable[[], bool], clusters: int
    ) -> bytes:
        self.queue_depth.set(queue_depth())
        self.leader.set(1 if leading() else 0)
        self.clusters.set(clusters)
        return generate_latest(self.registry)


def may_scrape(token: str, public: bool, authorization: str | None) -> bool:
    """A scrape is allowed when metrics are public, or it carries ``Bearer <token>``."""
    return public or secret_matches(token, bearer_token(authorization))
