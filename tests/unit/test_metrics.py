"""ServiceMetrics: gauges from the clusters the service knows, start counters from changes."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from traitlets.config import Config

from jhub_gateway.hub_service.backends.base import ClusterRegistry
from jhub_gateway.hub_service.metrics import ServiceMetrics
from jhub_gateway.hub_service.quotas import Footprint
from jhub_gateway.models import Cluster, ClusterEvent, ClusterStatus

GIB = 2**30


def footprint(workers: int) -> Footprint:
    return Footprint(1.0, GIB, 2.0, 4 * GIB, workers)


def cluster(
    name: str, user: str, status: ClusterStatus, reason: str = "", ran_after: float | None = None
) -> Cluster:
    c = Cluster(name=name, username=user, start_time=1_000_000)
    if ran_after is not None:
        c.events.append(ClusterEvent(1000.0 + ran_after, "RUNNING", "SchedulerReady"))
    c.status = status
    c.reason = reason
    return c


def samples(metrics: ServiceMetrics) -> dict[tuple[str, frozenset], float]:
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


def test_gauges_sum_active_clusters_only():
    m = ServiceMetrics()
    m.refresh(
        [
            (cluster("a", "alice", ClusterStatus.RUNNING, ran_after=2.0), footprint(3)),
            (cluster("b", "bob", ClusterStatus.PENDING), footprint(1)),
            (cluster("c", "bob", ClusterStatus.STOPPED, "StopRequested"), footprint(5)),
        ]
    )
    assert value(m, "jhub_gateway_clusters", state="running") == 1
    assert value(m, "jhub_gateway_clusters", state="pending") == 1
    assert value(m, "jhub_gateway_clusters", state="stopped") == 1
    assert value(m, "jhub_gateway_clusters", state="failed") == 0
    assert value(m, "jhub_gateway_active_workers") == 4
    assert value(m, "jhub_gateway_active_cores") == (1 + 3 * 2) + (1 + 1 * 2)
    assert value(m, "jhub_gateway_active_memory_bytes") == (1 + 12) * GIB + (1 + 4) * GIB
    # per-user series are off by default: no user names in the output
    assert "alice" not in m.render().decode()


def started(name: str, user: str, end: ClusterStatus, reason: str = "", ran_after=None):
    """A cluster as the backend shows it: first pending, then at ``end``."""
    pending = cluster(name, user, ClusterStatus.PENDING)
    return pending, cluster(name, user, end, reason, ran_after)


def test_each_start_counts_once_with_its_latency_and_failures_by_reason():
    m = ServiceMetrics()
    for pending, end in (
        started("a", "alice", ClusterStatus.RUNNING, ran_after=2.5),
        started("f", "bob", ClusterStatus.FAILED, "StartTimeout"),
        started("g", "bob", ClusterStatus.FAILED, "no such <reason>"),
    ):
        m.observe_cluster(pending.name, pending)
        for _ in range(3):  # changes repeat (heartbeats, relists); a start counts once
            m.observe_cluster(end.name, end)
    m.refresh([])  # a scrape derives nothing: the counts are already there
    assert value(m, "jhub_gateway_cluster_starts_total", outcome="running", reason="Started") == 1
    assert (
        value(m, "jhub_gateway_cluster_starts_total", outcome="failed", reason="StartTimeout") == 1
    )
    # reasons that are not identifiers do not become label values
    assert value(m, "jhub_gateway_cluster_starts_total", outcome="failed", reason="Other") == 1
    assert value(m, "jhub_gateway_cluster_start_duration_seconds_count") == 1
    assert value(m, "jhub_gateway_cluster_start_duration_seconds_sum") == 2.5
    assert value(m, "jhub_gateway_cluster_start_duration_seconds_bucket", le="5.0") == 1
    assert value(m, "jhub_gateway_cluster_start_duration_seconds_bucket", le="2.0") == 0


def test_a_start_purged_before_any_scrape_still_counts():
    m = ServiceMetrics()
    pending, failed = started("p", "alice", ClusterStatus.FAILED, "SchedulerExited")
    m.observe_cluster("p", pending)
    m.observe_cluster("p", failed)
    m.observe_cluster("p", None)  # purged
    m.refresh([])
    assert (
        value(m, "jhub_gateway_cluster_starts_total", outcome="failed", reason="SchedulerExited")
        == 1
    )


def test_clusters_first_seen_past_their_start_are_not_counted():
    # a restarted service re-adopts its clusters; a new replica lists the others' clusters
    m = ServiceMetrics()
    m.observe_cluster("r", cluster("r", "alice", ClusterStatus.RUNNING, ran_after=1.0))
    m.observe_cluster("x", cluster("x", "bob", ClusterStatus.FAILED, "StartTimeout"))
    stopped = started("s", "carol", ClusterStatus.STOPPED, "StopRequested")
    for c in stopped:  # stopped before it ran: not a start that ended
        m.observe_cluster("s", c)
    assert not [k for k in samples(m) if k[0] == "jhub_gateway_cluster_starts_total"]
    assert value(m, "jhub_gateway_cluster_start_duration_seconds_count") == 0


def test_kubernetes_ready_condition_marks_the_start():
    m = ServiceMetrics()
    pending = cluster("k", "alice", ClusterStatus.PENDING)
    ready = cluster("k", "alice", ClusterStatus.RUNNING)
    ready.events.append(ClusterEvent(1004.0, "Ready=True", "SchedulerReady"))
    m.observe_cluster("k", pending)
    m.observe_cluster("k", ready)
    assert value(m, "jhub_gateway_cluster_start_duration_seconds_sum") == 4.0


def test_the_registry_tells_its_observers_of_every_change_and_removal():
    seen: list[tuple[str, ClusterStatus | None]] = []
    registry = ClusterRegistry()

    def broken(name, c):
        raise RuntimeError("an observer's fault")

    registry.observers.extend([broken, lambda n, c: seen.append((n, c and c.status))])
    c = Cluster(name="c", username="alice")
    registry.add(c)
    c.status = ClusterStatus.RUNNING
    registry.notify("c")
    registry.remove("c")
    assert seen == [("c", ClusterStatus.PENDING), ("c", ClusterStatus.RUNNING), ("c", None)]


def test_per_user_series_when_enabled_and_cleared_when_gone():
    config = Config()
    config.ServiceMetrics.per_user = True
    m = ServiceMetrics(config=config)
    a = cluster("a", "alice", ClusterStatus.RUNNING, ran_after=1)
    m.refresh([(a, footprint(2))])
    assert value(m, "jhub_gateway_user_workers", user="alice") == 2
    assert value(m, "jhub_gateway_user_clusters", user="alice") == 1
    m.refresh([])
    assert ("jhub_gateway_user_workers", frozenset({("user", "alice")})) not in samples(m)


def test_scrape_permission():
    assert not ServiceMetrics().may_scrape(None)
    assert not ServiceMetrics().may_scrape("anything")
    config = Config()
    config.ServiceMetrics.token = "s3cret"
    with_token = ServiceMetrics(config=config)
    assert with_token.may_scrape("s3cret")
    assert not with_token.may_scrape("s3cre")
    assert not with_token.may_scrape("ŝ3cret")
    config = Config()
    config.ServiceMetrics.public = True
    assert ServiceMetrics(config=config).may_scrape(None)


def test_requests_are_counted_per_label_set_past_the_cached_ones():
    m = ServiceMetrics()
    for _ in range(3):
        m.observe_request("ClustersHandler", "GET", 200, 0.002)
    for i in range(600):  # more label sets than are kept at hand
        m.observe_request(f"Handler{i}", "GET", 404, 0.001)
    m.observe_request("Handler599", "GET", 404, 0.001)
    labels = {"handler": "ClustersHandler", "method": "GET"}
    assert value(m, "jhub_gateway_http_requests_total", code="200", **labels) == 3
    assert value(m, "jhub_gateway_http_request_duration_seconds_count", **labels) == 3
    assert (
        value(m, "jhub_gateway_http_requests_total", handler="Handler599", method="GET", code="404")
        == 2
    )
    m.observe_auth_cache(True)
    m.observe_auth_cache(False)
    m.observe_auth_cache(True)
    assert value(m, "jhub_gateway_hub_auth_cache_total", result="hit") == 2


def test_methods_a_client_makes_up_share_one_label():
    m = ServiceMetrics()
    for i in range(100):
        m.observe_request("NotFoundHandler", f"M{i}", 405, 0.001)
    m.observe_request("NotFoundHandler", "DELETE", 405, 0.001)
    samples = [
        s
        for metric in m.registry.collect()
        if metric.name == "jhub_gateway_http_requests"
        for s in metric.samples
        if s.name.endswith("_total")
    ]
    assert {s.labels["method"] for s in samples} == {"other", "DELETE"}
    other = "other"
    assert (
        value(
            m,
            "jhub_gateway_http_requests_total",
            handler="NotFoundHandler",
            method=other,
            code="405",
        )
        == 100
    )
