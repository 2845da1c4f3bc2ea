"""The pages' view functions: totals, filters and paging over many clusters."""

from __future__ import annotations

import json
import time

from jhub_gateway.hub_service.pages import views
from jhub_gateway.hub_service.pages.html import embed_json
from jhub_gateway.hub_service.quotas import Footprint
from jhub_gateway.models import Cluster, ClusterStatus

FP = Footprint(
    scheduler_cores=1, scheduler_memory=2**30, worker_cores=2, worker_memory=2**31, workers=3
)


def _clusters(n: int, users: int) -> list[Cluster]:
    out = []
    for i in range(n):
        c = Cluster(name=f"c{i:04d}", username=f"user{i % users:02d}", start_time=1_000 + i)
        c.transition(ClusterStatus.RUNNING, "Running")
        c.active_workers = 3
        c.target_workers = 3
        out.append(c)
    return out


def test_overview_of_500_clusters_totals_every_user_and_sends_one_page_fast():
    clusters = _clusters(500, 50)
    start = time.perf_counter()
    body = views.overview(clusters, lambda c: FP, views.OverviewQuery(page=3, per_page=50), "/p/")
    elapsed = time.perf_counter() - start
    assert len(body["users"]) == 50
    assert all(u["clusters"] == 10 and u["workers"] == 30 for u in body["users"])
    assert body["users"][0]["cores"] == 10 * FP.cores
    assert body["users"][0]["memory"] == 10 * FP.memory
    assert body["total"] == 500 and body["pages"] == 10 and len(body["clusters"]) == 50
    # ordered by user, then age: page 3 (items 100-149) is user10's to user14's
    assert body["clusters"][0]["username"] == "user10"
    assert body["clusters"][0]["name"] == "c0010"  # user10's oldest
    assert body["clusters"][0]["dashboard_url"] is None  # no dashboard address yet
    assert elapsed < 0.5, elapsed
    assert len(json.dumps(body)) < 100_000


def test_overview_filters_by_user_substring_and_clamps_the_page():
    clusters = _clusters(30, 3)
    body = views.overview(
        clusters, lambda c: FP, views.OverviewQuery(user="USER01", page=99, per_page=4), ""
    )
    assert {c["username"] for c in body["clusters"]} == {"user01"}
    assert body["total"] == 10 and body["page"] == 3 == body["pages"]


def test_parse_page_bounds():
    assert views.parse_page(None, 1, 10, "page") == 1
    assert views.parse_page("500", 1, 200, "per_page") == 200
    for bad in ("0", "-1", "1.5", "x"):
        try:
            views.parse_page(bad, 1, 10, "page")
        except ValueError as exc:
            assert "page must be a positive integer" in str(exc)
        else:
            raise AssertionError(bad)


def test_embedded_json_cannot_close_its_script_element():
    text = embed_json({"name": "</script><script>alert(1)</script>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["name"].startswith("</script>")
