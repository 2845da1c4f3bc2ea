"""A DaskCluster's stop reason survives the controller's phases (who and why, not only how)."""

from __future__ import annotations

import pytest

from jhub_gateway.hub_service.backends.kube.model import (
    ANNOTATION_STOP_MESSAGE,
    ANNOTATION_STOP_REASON,
    cluster_from_objects,
)
from jhub_gateway.models import ClusterStatus


def daskcluster(phase: str, reason: str, active: bool, stopped_by: str | None) -> dict:
    annotations = {}
    if stopped_by is not None:
        annotations = {ANNOTATION_STOP_REASON: stopped_by, ANNOTATION_STOP_MESSAGE: "why"}
    return {
        "metadata": {"name": "c1", "namespace": "dask", "annotations": annotations},
        "spec": {"active": active, "username": "alice"},
        "status": {"phase": phase, "reason": reason, "message": "controller's words"},
    }


@pytest.mark.parametrize(
    "phase, controller_reason, status",
    [
        ("Running", "Running", ClusterStatus.STOPPING),  # the controller has not caught up
        ("Stopping", "StopRequested", ClusterStatus.STOPPING),
        ("Stopped", "Stopped", ClusterStatus.STOPPED),
    ],
)
def test_the_stop_annotation_names_the_reason_in_every_stop_phase(phase, controller_reason, status):
    obj = daskcluster(phase, controller_reason, active=False, stopped_by="OwnerServerStopped")
    cluster = cluster_from_objects(obj, None, {})
    assert (cluster.status, cluster.reason, cluster.message) == (
        status,
        "OwnerServerStopped",
        "why",
    )


def test_a_failure_keeps_the_controllers_reason_and_no_annotation_keeps_its_words():
    failed = cluster_from_objects(
        daskcluster("Failed", "InvalidConfig", False, "IdleTimeout"), None, {}
    )
    assert (failed.status, failed.reason) == (ClusterStatus.FAILED, "InvalidConfig")
    plain = cluster_from_objects(daskcluster("Stopped", "Stopped", False, None), None, {})
    assert (plain.reason, plain.message) == ("Stopped", "controller's words")
