"""KubeClusterConfig: upstream's names and values, stored as the CRD's camelCase spec.config."""

from __future__ import annotations

import subprocess
import sys

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jhub_gateway import __version__
from jhub_gateway.controller.builders import ClusterSpec, build_scheduler_pod, build_worker_pod
from jhub_gateway.crd import CONFIG_FIELDS
from jhub_gateway.hub_service.backends.kube.backend import KubeBackend
from jhub_gateway.hub_service.backends.kube.config import (
    KubeClusterConfig,
    from_spec_config,
    to_spec_config,
)
from jhub_gateway.hub_service.backends.kube.model import build_daskcluster

GIB = 2**30


@pytest.mark.parametrize(
    "value, expected",
    [
        ("4G", 4 * GIB),
        ("2 G", 2 * GIB),
        ("7.235G", int(7.235 * GIB)),
        ("%fG" % 1.5, int(1.5 * GIB)),  # noqa: UP031
        ("512M", 512 * 2**20),
        (3_000_000_000, 3_000_000_000),
        (2.5e9, 2_500_000_000),
    ],
)
def test_memory_accepts_what_real_configs_pass(value, expected) -> None:
    config = KubeClusterConfig(worker_memory=value, scheduler_memory=value)
    assert config.worker_memory == expected
    assert config.scheduler_memory == expected


@pytest.mark.parametrize("value", ["lots", "4 Q", -1, 0, float("nan"), True])
def test_bad_memory_is_refused_with_the_trait_name(value) -> None:
    with pytest.raises(TraitError, match="worker_memory"):
        KubeClusterConfig(worker_memory=value)


def test_zero_limits_mean_the_request_and_defaults_follow_upstream() -> None:
    config = KubeClusterConfig()
    assert config.image == f"ghcr.io/jhub-gateway/jhub-gateway-cluster:{__version__}"
    assert config.image_pull_policy is None
    assert config.worker_memory_limit == 0 and config.scheduler_memory_limit == 0
    assert config.worker_cores == 1 and config.scheduler_cores == 1
    assert config.worker_memory == 2 * GIB
    assert config.threads == 1
    assert KubeClusterConfig(worker_threads=None, worker_cores=3).threads == 3


def test_operator_config_by_upstream_section_names() -> None:
    cfg = Config()
    cfg.ClusterConfig.worker_cores = 2
    cfg.KubeClusterConfig.worker_memory = "%fG" % 3  # noqa: UP031 (as real configs write it)
    cfg.KubeClusterConfig.image_pull_secrets = ["regcred", {"name": "other"}]
    cfg.KubeClusterConfig.scheduler_extra_pod_labels = {"team": "geo"}
    backend = KubeBackend(config=cfg, namespace="dask")
    config = backend.cluster_config_class(parent=backend)
    assert isinstance(config, KubeClusterConfig)
    assert config.worker_cores == 2
    assert config.worker_memory == 3 * GIB
    assert config.image_pull_secrets == [{"name": "regcred"}, {"name": "other"}]
    assert config.namespace == "dask"  # the backend's namespace by default
    assert config.scheduler_extra_pod_labels == {"team": "geo"}


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
        ({"image": " "}, "image"),
        ({"image_pull_secrets": [{"nom": "x"}]}, "image_pull_secrets"),
        ({"namespace": "Not_A_Label"}, "namespace"),
        ({"worker_extra_pod_config": {"node_selector": {"a": "b"}}}, "camelCase"),
        ({"scheduler_extra_container_config": {"x": object()}}, "JSON"),
        ({"worker_extra_pod_labels": {"a": 1}}, "worker_extra_pod_labels"),
        ({"worker_extra_pod_labels": {"a b": "x"}}, "worker_extra_pod_labels.*name must be"),
        ({"scheduler_extra_pod_labels": {"team": "a/b"}}, "label value"),
        ({"scheduler_extra_pod_annotations": {"UPPER.example/x": "y"}}, "prefix"),
    ],
)
def test_invalid_settings_fail_with_what_to_fix(kwargs, needle) -> None:
    with pytest.raises(TraitError, match=needle):
        KubeClusterConfig(**kwargs)


def test_spec_config_uses_the_crd_keys_and_round_trips() -> None:
    config = KubeClusterConfig(
        namespace="dask",
        worker_memory="4G",
        worker_memory_limit="6 G",
        cluster_max_workers=5,
        cluster_max_memory="64G",
        image_pull_policy="IfNotPresent",
        environment={"A": "1"},
        worker_extra_pod_annotations={"x": "y"},
    )
    spec = to_spec_config(config)
    assert set(spec) <= set(CONFIG_FIELDS)
    assert spec["workerMemory"] == 4 * GIB and spec["workerMemoryLimit"] == 6 * GIB
    assert spec["clusterMaxWorkers"] == 5 and spec["clusterMaxMemory"] == 64 * GIB
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert "clusterMaxCores" not in spec  # None is left out (the schema has no nulls)
    again = KubeClusterConfig(**from_spec_config(spec, "dask"))
    assert to_spec_config(again) == spec
    assert again.max_workers() == 5


def test_commands_are_written_only_when_not_the_default() -> None:
    assert "schedulerCmd" not in to_spec_config(KubeClusterConfig(namespace="dask"))
    assert "workerCmd" not in to_spec_config(KubeClusterConfig(namespace="dask"))
    spec = to_spec_config(
        KubeClusterConfig(namespace="dask", worker_cmd="dask-cuda-worker --rmm-pool-size 1GB")
    )
    assert spec["workerCmd"] == ["dask-cuda-worker", "--rmm-pool-size", "1GB"]
    assert "schedulerCmd" not in spec
    again = KubeClusterConfig(**from_spec_config(spec, "dask"))
    assert again.command("worker") == ["dask-cuda-worker", "--rmm-pool-size", "1GB"]


def test_controller_builds_pods_from_what_the_service_writes() -> None:
    """The contract end to end: extra configs deep-merged, extra values win, lists appended."""
    config = KubeClusterConfig(
        namespace="dask",
        image="example/image:1",
        worker_cores=2,
        worker_memory="3G",
        worker_extra_pod_config={
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "restartPolicy": "Never",
        },
        worker_extra_container_config={"env": [{"name": "EXTRA", "value": "1"}]},
        scheduler_extra_pod_config={"nodeSelector": {"pool": "core"}},
        worker_extra_pod_labels={"team": "geo", "app.kubernetes.io/component": "other"},
        worker_extra_pod_annotations={"note": "free text"},
        scheduler_extra_pod_labels={"tier": "core"},
    )
    body = build_daskcluster(
        name="abc",
        namespace="dask",
        instance="gw",
        username="alice",
        groups=frozenset(),
        options={},
        config=to_spec_config(config),
    )
    body["metadata"]["uid"] = "uid-1"
    spec = ClusterSpec.from_resource(
        body,
        instance="gw",
        api_url="http://api.dask:8000/api",
        dashboard_auth_middleware="auth",
        scheduler_address="10.0.0.1:8786",
    )
    worker = build_worker_pod(spec)
    container = worker["spec"]["containers"][0]
    assert container["image"] == "example/image:1"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": str(3 * GIB)}
    assert worker["spec"]["restartPolicy"] == "Never"  # the extra value wins
    assert worker["spec"]["tolerations"] == [{"key": "spot", "operator": "Exists"}]
    env = [e["name"] for e in container["env"]]
    assert env[-1] == "EXTRA" and "DASK_GATEWAY_WORKER_NAME" in env  # appended, ours kept
    scheduler = build_scheduler_pod(spec)
    assert scheduler["spec"]["nodeSelector"] == {"pool": "core"}
    assert "nodeSelector" not in worker["spec"]
    labels = worker["metadata"]["labels"]
    assert labels["team"] == "geo" and labels["app.kubernetes.io/component"] == "dask-worker"
    assert worker["metadata"]["annotations"] == {"note": "free text"}
    assert (
        scheduler["metadata"]["labels"]["tier"] == "core"
        and "team" not in scheduler["metadata"]["labels"]
    )
    assert "annotations" not in scheduler["metadata"]


def test_generate_config_lists_the_kubernetes_options(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jhub_gateway.hub_service", "--generate-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "jhub_gateway_config.py").read_text()
    for option in (
        "c.KubeBackend.instance",
        "c.KubeBackend.lookup_timeout",
        "c.KubeClusterConfig.worker_extra_pod_labels",
        "c.KubeClusterConfig.image_pull_secrets",
    ):
        assert f"# {option} =" in text, option
