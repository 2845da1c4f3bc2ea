"""The DaskCluster CRD: schema content, the chart copy, and behaviour on the API emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from jhub_gateway import crd
from jhub_gateway.controller.builders import selector_string, worker_selector
from tests.kube.apiserver import KubeCluster, launch
from tests.kube.apiserver.schema import prune

CHART_CRD = Path(__file__).parents[2] / "helm" / "jhub-gateway" / "crds" / "daskclusters.yaml"
NS = "default"
MERGE = "application/merge-patch+json"  # kubernetes_asyncio picks json-patch for a dict
JSON_PATCH = "application/json-patch+json"


def _schema() -> dict[str, Any]:
    return crd.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _full_spec() -> dict[str, Any]:
    return {
        "username": "alice",
        "active": True,
        "replicas": 2,
        "options": {"worker_cores": 2, "anything": {"nested": [1]}},
        "config": {
            "image": "img:1",
            "imagePullPolicy": "IfNotPresent",
            "imagePullSecrets": [{"name": "regcred"}],
            "environment": {"A": "1"},
            "schedulerCores": 1,
            "schedulerCoresLimit": 0,
            "schedulerMemory": 2**31,
            "schedulerMemoryLimit": 0,
            "workerCores": 1.5,
            "workerCoresLimit": 2,
            "workerMemory": 2**32,
            "workerMemoryLimit": 2**33,
            "workerThreads": 0,
            "idleTimeout": 1800,
            "maxLifetime": 0,
            "schedulerStartTimeout": 60,
            "workerStartTimeout": 60,
            "adaptivePeriod": 3,
            "schedulerExtraPodConfig": {"nodeSelector": {"a": "b"}},
            "schedulerExtraContainerConfig": {},
            "workerExtraPodConfig": {"tolerations": [{"key": "k"}]},
            "workerExtraContainerConfig": {"env": [{"name": "X", "value": "1"}]},
        },
    }


def test_chart_copy_is_the_generated_manifest() -> None:
    assert CHART_CRD.read_text() == crd.crd_yaml(), "run: python -m jhub_gateway.crd > " + str(
        CHART_CRD.relative_to(Path(__file__).parents[2])
    )


def test_crd_is_a_valid_customresourcedefinition() -> None:
    kubernetes_validate.validate(
        crd.crd_manifest(), kubernetes_validate.latest_version(), strict=True
    )
    version = crd.crd_manifest()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "User", "Phase", "Workers", "Ready", "Age",
    ]  # fmt: skip


def test_config_schema_and_field_map_agree() -> None:
    config_props = _schema()["properties"]["spec"]["properties"]["config"]["properties"]
    assert set(config_props) == set(crd.CONFIG_FIELDS)


def test_full_cluster_object_validates_and_nothing_is_pruned() -> None:
    obj = crd.cluster_object("c1", NS, _full_spec())
    obj["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "reason": "SchedulerReady"}],
        "observedGeneration": 1,
        "replicas": 2,
        "selector": selector_string(worker_selector("gw", "c1")),
        "schedulerAddress": "tls://10.0.0.1:8786",
        "credentials": "dask-credentials-c1",
        "startTime": "2026-01-01T00:00:00Z",
    }
    jsonschema.Draft4Validator(_schema()).validate(obj)
    removed: list[str] = []
    prune(_schema(), obj, root=True, removed=removed)
    assert removed == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": 1}, "'username' is a required property"),
        ({"username": "a", "replicas": -1}, "-1 is less than the minimum of 0"),
        ({"username": "a", "config": {"workerMemory": "2G"}}, "'2G' is not of type 'integer'"),
        ({"username": "a", "config": {"adaptivePeriod": 0}}, "less than or equal to the minimum"),
    ],
)
def test_invalid_specs_fail_the_schema(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.Draft4Validator(_schema()).validate(crd.cluster_object("c", NS, spec))


def test_public_names_round_trip() -> None:
    assert crd.public_name("team-a", "abc") == "team-a.abc"
    assert crd.parse_public_name("team-a.abc") == ("team-a", "abc")
    for bad in ("abc", "a.b.c", "A.b", "a./b", ".b", "a."):
        with pytest.raises(ValueError, match="cluster name"):
            crd.parse_public_name(bad)


# -- against the API emulator, with the real client ----------------------------------


class Api:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.ext = client.ApiextensionsV1Api(api_client)

    async def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = crd.cluster_object(name, NS, spec)
        return await self.custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NS, crd.PLURAL, body
        )

    async def get(self, name: str) -> dict[str, Any]:
        return await self.custom.get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NS, crd.PLURAL, name
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    kube: KubeCluster = await launch(tmp_path_factory.mktemp("kube"), kubelet=False)
    try:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=cfg)
        async with client.ApiClient(configuration=cfg) as api_client:
            a = Api(api_client)
            created = await a.ext.create_custom_resource_definition(crd.crd_manifest())
            assert created.status.conditions[-1].type == "Established"
            yield a
    finally:
        await kube.stop()


@pytest.mark.kube
@pytest.mark.asyncio(loop_scope="module")
async def test_create_defaults_and_status_subresource(api: Api) -> None:
    obj = await api.create("c-status", {"username": "alice", "options": {"x": {"y": 1}}})
    assert obj["spec"]["active"] is True and obj["spec"]["replicas"] == 0  # defaulted
    assert obj["spec"]["options"] == {"x": {"y": 1}}  # preserved
    status = {
        "phase": "Running",
        "reason": "SchedulerReady",
        "conditions": [{"type": "Ready", "status": "True", "reason": "SchedulerReady"}],
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": 0,
        "selector": selector_string(worker_selector("gw", "c-status")),
    }
    patched = await api.custom.patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, NS, crd.PLURAL, "c-status", {"status": status}, _content_type=MERGE
    )
    assert patched["status"] == status
    # The main resource ignores status writes: only the controller's subresource sets it.
    await api.custom.patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, NS, crd.PLURAL, "c-status",
        {"status": {"phase": "Failed"}}, _content_type=MERGE,
    )  # fmt: skip
    assert (await api.get("c-status"))["status"]["phase"] == "Running"
    with pytest.raises(ApiException) as exc:
        await api.custom.patch_namespaced_custom_object_status(
            crd.GROUP, crd.VERSION, NS, crd.PLURAL, "c-status",
            {"status": {"phase": "Exploded"}}, _content_type=MERGE,
        )  # fmt: skip
    assert exc.value.status == 422


@pytest.mark.kube
@pytest.mark.asyncio(loop_scope="module")
async def test_scale_subresource(api: Api) -> None:
    await api.create("c-scale", {"username": "bob", "replicas": 1})
    selector = selector_string(worker_selector("gw", "c-scale"))
    await api.custom.patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, NS, crd.PLURAL, "c-scale",
        [{"op": "add", "path": "/status", "value": {"replicas": 1, "selector": selector}}],
        _content_type=JSON_PATCH,
    )  # fmt: skip
    scale = await api.custom.get_namespaced_custom_object_scale(
        crd.GROUP, crd.VERSION, NS, crd.PLURAL, "c-scale"
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"] == {"replicas": 1}
    assert scale["status"] == {"replicas": 1, "selector": selector}
    scaled = await api.custom.patch_namespaced_custom_object_scale(
        crd.GROUP, crd.VERSION, NS, crd.PLURAL, "c-scale",
        {"spec": {"replicas": 4}}, _content_type=MERGE,
    )  # fmt: skip
    assert scaled["spec"] == {"replicas": 4}
    assert (await api.get("c-scale"))["spec"]["replicas"] == 4


@pytest.mark.kube
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"username": "carol", "replicas": -1}, "spec.replicas"),
        ({"replicas": 1}, "spec.username"),
        ({"username": "carol", "config": {"workerMemory": "2G"}}, "spec.config.workerMemory"),
    ],
)
async def test_invalid_spec_is_rejected_with_422(
    api: Api, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as exc:
        await api.create("c-invalid", spec)
    assert exc.value.status == 422
    assert field in exc.value.body
