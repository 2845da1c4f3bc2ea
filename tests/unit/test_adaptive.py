"""AdaptiveBounds: what extended answers say about a cluster's adaptive scaling."""

from __future__ import annotations

from jhub_gateway.hub_service.adaptive import AdaptiveBounds
from jhub_gateway.models import Cluster, ClusterStatus


def test_adaptive_bounds_are_shown_while_active_and_forgotten_with_the_cluster():
    c = Cluster(name="c", username="alice", status=ClusterStatus.RUNNING)
    bounds = AdaptiveBounds({"c": c}.get)
    bounds.set("c", {"minimum": 0, "maximum": 4})
    assert bounds.get(c) == {"minimum": 0, "maximum": 4}
    c.status = ClusterStatus.STOPPING
    assert bounds.get(c) is None
    c.status = ClusterStatus.STOPPED
    bounds.observe("c", c)
    c.status = ClusterStatus.RUNNING  # a record dropped for good, not only hidden
    assert bounds.get(c) is None
    bounds.set("c", {"minimum": 1, "maximum": 2})
    bounds.set("c", None)
    assert bounds.get(c) is None


def test_bounds_arriving_after_their_cluster_ended_or_went_away_are_not_kept():
    live = {"c": Cluster(name="c", username="alice", status=ClusterStatus.RUNNING)}
    bounds = AdaptiveBounds(live.get)
    bounds.set("c", {"minimum": 0, "maximum": 4})
    assert bounds.get(live["c"]) == {"minimum": 0, "maximum": 4}
    live["c"].status = ClusterStatus.STOPPED
    bounds.observe("c", live["c"])
    bounds.set("c", {"minimum": 1, "maximum": 3})  # a heartbeat that was in flight
    gone = live.pop("c")
    bounds.set("c", {"minimum": 1, "maximum": 3})  # ... or one after the purge
    gone.status = ClusterStatus.RUNNING
    assert bounds.get(gone) is None
    assert bounds._bounds == {}
