"""controller.warmSchedulerPods: wired into the controller's config, with an owner Helm deletes."""

from __future__ import annotations

import helm_python as helm
import pytest

from .chart import FULLNAME, render
from .test_metrics_chart import _controller_config


def _rules(docs) -> list[dict]:
    return docs[("Role", f"{FULLNAME}-controller")]["rules"]


def test_one_warm_pod_by_default_owned_by_the_controllers_configmap() -> None:
    docs = render()
    config = _controller_config(docs).KubeController
    assert config.warm_scheduler_pods == 1
    assert ("ConfigMap", config.warm_pod_owner_configmap) in docs  # deleted by helm uninstall
    # the profile warmed first: the cluster image the api's KubeClusterConfig gets
    image = config.warm_scheduler_config["image"]
    assert image.startswith("ghcr.io/") and ":" in image
    # the controller may read that one ConfigMap and nothing else of the kind
    (rule,) = [r for r in _rules(docs) if "configmaps" in r["resources"]]
    assert (rule["resourceNames"], rule["verbs"]) == ([config.warm_pod_owner_configmap], ["get"])


def test_zero_turns_them_off_and_negative_is_refused() -> None:
    docs = render("controller:\n  warmSchedulerPods: 0\n")
    assert _controller_config(docs).KubeController.warm_scheduler_pods == 0
    with pytest.raises(helm.HelmValuesError) as info:
        render("controller:\n  warmSchedulerPods: -1\n")
    assert "warmSchedulerPods" in str(info.value)
