"""Service pieces without processes: config parsing, quotas, sessions, OpenAPI."""

from __future__ import annotations

import re

import pytest
from traitlets import TraitError

from jhub_gateway.hub_service.cluster_config import ClusterConfig, parse_memory
from jhub_gateway.hub_service.openapi import openapi_document
from jhub_gateway.hub_service.quotas import Footprint, Limits, Usage, UserQuotas, workers_allowed
from jhub_gateway.hub_service.web import api_routes
from jhub_gateway.models import Cluster, ClusterStatus, User


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 G", 2 * 2**30),
        ("512M", 512 * 2**20),
        ("1.5GiB", int(1.5 * 2**30)),
        (1024, 1024),
        ("100", 100),
    ],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "2 X", True, "G"])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError, match="memory must be a size"):
        parse_memory(bad)


def test_cluster_config_validates_memory_and_limits():
    with pytest.raises(TraitError, match="memory must be a size"):
        ClusterConfig(worker_memory="plenty")
    cfg = ClusterConfig(
        worker_cores=2, scheduler_cores=1, cluster_max_cores=9, cluster_max_workers=10
    )
    assert cfg.max_workers() == 4
    cfg = ClusterConfig(worker_memory="1 G", scheduler_memory="1 G", cluster_max_memory="5 G")
    assert cfg.max_workers() == 4
    assert ClusterConfig().max_workers() is None
    assert ClusterConfig(scheduler_cmd="python -m distributed.cli.dask_scheduler").command(
        "scheduler"
    )[:2] == [
        "python",
        "-m",
    ]


def test_group_limits_take_the_most_generous():
    quotas = UserQuotas(
        max_clusters=1,
        max_workers=4,
        group_limits={"big": {"clusters": 5}, "small": {"clusters": 2}},
    )
    assert quotas.limits_for(User("u")).clusters == 1
    assert quotas.limits_for(User("u", groups=frozenset({"big", "small"}))).clusters == 5
    assert quotas.limits_for(User("u", groups=frozenset({"small"}))).workers == 4


def test_group_limits_validation_names_the_group():
    with pytest.raises(TraitError, match="group_limits\\['g'\\]"):
        UserQuotas(group_limits={"g": {"gpus": 1}})


def test_workers_allowed_by_cores_and_memory():
    config = ClusterConfig(
        worker_cores=2, scheduler_cores=1, worker_memory="1 G", scheduler_memory="1 G"
    )
    cluster = Footprint.of(config, 0)
    others = Usage(clusters=1, workers=2, cores=5.0, memory=3 * 2**30)
    assert workers_allowed(Limits(cores=12), others, cluster, 10) == 3  # (12 - 5 - 1) // 2
    assert workers_allowed(Limits(memory=8 * 2**30), others, cluster, 10) == 4
    assert workers_allowed(Limits(workers=3), others, cluster, 10) == 1
    assert workers_allowed(Limits(), others, cluster, 10) == 10


def test_status_transitions_record_reasons_and_terminal_is_final():
    cluster = Cluster(name="c", username="u")
    assert cluster.transition(ClusterStatus.RUNNING, "Running")
    assert cluster.transition(ClusterStatus.FAILED, "SchedulerExited", "code 1")
    assert cluster.stop_time is not None
    assert not cluster.transition(ClusterStatus.RUNNING, "Again")
    assert [e.reason for e in cluster.events] == ["Running", "SchedulerExited"]
    wire = cluster.to_wire(include_credentials=True, extended=True)
    assert (
        wire["status"] == "FAILED"
        and wire["tls_key"] is None
        and wire["reason"] == "SchedulerExited"
    )
    upstream_fields = {
        "name",
        "dashboard_route",
        "status",
        "start_time",
        "stop_time",
        "options",
        "tls_cert",
        "tls_key",
    }
    assert set(cluster.to_wire(include_credentials=True)) == upstream_fields


def test_credentials_only_for_running_clusters():
    cluster = Cluster(
        name="c", username="u", tls_cert="CERT", tls_key="KEY", dashboard_address="http://x"
    )
    assert cluster.to_wire(include_credentials=True)["tls_key"] is None
    cluster.transition(ClusterStatus.RUNNING, "Running")
    assert cluster.to_wire(include_credentials=True)["tls_key"] == "KEY"
    assert cluster.to_wire(include_credentials=False)["tls_key"] is None
    assert cluster.to_wire(include_credentials=True)["dashboard_route"] == "/clusters/c/status"


def _openapi_path(pattern: str) -> str:
    path = "/" + pattern.replace("([^/]+)", "{name}").replace("/?", "/")
    return re.sub(r"\\.", ".", path)


def test_openapi_document_lists_exactly_the_routes():
    doc = openapi_document("/services/dask-gateway/")
    served = {_openapi_path(p) for p, _ in api_routes()}
    assert served == set(doc["paths"])
    for path, handler in api_routes():
        methods = {m.lower() for m in ("GET", "POST", "DELETE") if m.lower() in vars(handler)}
        assert methods == set(doc["paths"][_openapi_path(path)]), path
    assert doc["servers"] == [{"url": "/services/dask-gateway"}]


@pytest.mark.parametrize("bad", ["-1 G", 0, -5, "inf G", float("nan")])
def test_parse_memory_rejects_non_positive_and_infinite(bad):
    with pytest.raises(ValueError, match="memory must be a"):
        parse_memory(bad)


@pytest.mark.parametrize("limits", [{"clusters": "5"}, {"workers": -1}, {"cores": True}])
def test_group_limit_values_are_checked(limits):
    with pytest.raises(TraitError, match="non-negative number"):
        UserQuotas(group_limits={"g": limits})


def test_stopping_never_returns_to_running():
    cluster = Cluster(name="c", username="u")
    cluster.transition(ClusterStatus.STOPPING, "StopRequested")
    assert not cluster.transition(ClusterStatus.RUNNING, "Running")
    assert cluster.status == ClusterStatus.STOPPING
    assert cluster.transition(ClusterStatus.STOPPED, "StopRequested")
