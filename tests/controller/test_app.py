"""The controller program's configuration and its cleanup of finished clusters (no emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jhub_gateway.controller.app import KubeController, main
from jhub_gateway.controller.manager import Controller, RunSettings
from jhub_gateway.controller.podstate import parse_time
from jhub_gateway.controller.settings import ControllerSettings

from .fakes import RecordingClient, cluster


def _app(tmp_path: Path, text: str) -> KubeController:
    config = tmp_path / "controller_config.py"
    config.write_text(text)
    app = KubeController()
    app.initialize(["-f", str(config)])
    return app


def test_config_file_sets_upstream_trait_names(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        "c.KubeController.gateway_instance = 'gw'\n"
        "c.KubeController.api_url = 'http://api-gw.ns:8000/api/'\n"
        "c.KubeController.k8s_api_rate_limit = 20\n"
        "c.KubeController.backoff_max_delay = 60\n"
        "c.KubeController.completed_cluster_max_age = 3600\n"
        "c.KubeController.proxy_prefix = '/services/dask-gateway/'\n",
    )
    settings = app.controller_settings()
    assert settings.api_url == "http://api-gw.ns:8000/api"
    assert settings.dashboard_auth_url == "http://api-gw.ns:8000/api/v1/dashboard-auth"
    assert settings.route_prefix == "/services/dask-gateway"
    run = app.run_settings()
    assert (run.backoff_max, run.completed_max_age, run.backoff_base) == (60, 3600, 0.1)
    assert app.k8s_api_rate_limit == 20 and app.k8s_api_rate_limit_burst == 100


def test_warm_pods_default_to_one_per_watched_namespace(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        "c.KubeController.gateway_instance = 'gw'\n"
        "c.KubeController.api_url = 'http://api-gw.ns:8000/api'\n"
        "c.KubeController.namespaces = ['a', 'b']\n"
        "c.KubeController.warm_scheduler_config = {'image': 'img:1'}\n",
    )
    warm = app.warm_settings(None)
    assert (warm.size, warm.namespaces, dict(warm.seed_config)) == (
        1,
        ("a", "b"),
        {"image": "img:1"},
    )
    assert app.run_settings(warm).warm == warm
    assert app.run_settings().warm.size == 0  # nothing warms unless the program asks
    assert not warm.follow_clusters  # the listed namespaces are all there is


def test_watching_all_namespaces_warms_where_clusters_are(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        "c.KubeController.gateway_instance = 'gw'\n"
        "c.KubeController.api_url = 'http://api-gw.ns:8000/api'\n",
    )
    warm = app.warm_settings(None)
    assert warm.follow_clusters and len(warm.namespaces) == 1  # and its own namespace


@pytest.mark.parametrize(
    "text,needle",
    [
        ("c.KubeController.api_url = 'http://a/api'\n", "gateway_instance"),
        ("c.KubeController.gateway_instance = 'gw'\n", "api_url"),
        ("c.KubeController.gateway_instance = 'gw'\nc.KubeController.api_url = 'api'\n",
         "http(s) URL"),
        ("c.KubeController.gateway_instance = 'gw'\nc.KubeController.api_url = 'http://a'\n"
         "c.KubeController.k8s_api_rate_limit = 0\n", "must be positive"),
        ("c.KubeController.gateway_instance = 'gw'\nc.KubeController.api_url = 'http://a'\n"
         "c.KubeController.renew_deadline = 20\n", "renew_deadline"),
        ("c.KubeController.gateway_instance = 'gw'\nc.KubeController.api_url = 'http://a'\n"
         "c.KubeController.warm_scheduler_pods = -1\n", "warm_scheduler_pods"),
    ],
)  # fmt: skip
def test_config_errors_fail_at_start_saying_what_to_fix(
    tmp_path: Path, text: str, needle: str
) -> None:
    config = tmp_path / "bad_config.py"
    config.write_text(text)
    with pytest.raises(SystemExit) as info:
        main(["-f", str(config)])
    assert "configuration error" in str(info.value) and needle in str(info.value)


def test_a_missing_config_file_given_explicitly_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-f", str(tmp_path / "nope.py")])
    assert "does not exist" in str(info.value)


async def test_cleanup_deletes_only_clusters_finished_long_enough_ago() -> None:
    now = parse_time("2026-12-02T12:00:00Z") or 0.0
    settings = ControllerSettings(instance="gw", api_url="http://a/api", dashboard_auth_url="x")
    controller = Controller(
        RecordingClient(None),  # type: ignore[arg-type]
        settings,
        RunSettings(namespaces=("ns",), completed_max_age=3600),
        clock=lambda: now,
    )
    rows = {
        "old-stopped": {"phase": "Stopped", "completionTime": "2026-12-02T10:00:00Z"},
        "old-failed": {"phase": "Failed", "completionTime": "2026-12-02T10:59:00Z"},
        "recent": {"phase": "Stopped", "completionTime": "2026-12-02T11:30:00Z"},
        "running": {"phase": "Running", "completionTime": "2026-12-02T01:00:00Z"},
        "no-time": {"phase": "Failed"},
    }
    for name, status in rows.items():
        controller.cache.apply("DaskCluster", "ADDED", {**cluster(name), "status": status})
    assert await controller.cleanup_once() == 2
    deleted = sorted(c[2] for c in controller.client.calls if c[0] == "delete")  # type: ignore[attr-defined]
    assert deleted == ["old-failed", "old-stopped"]
