"""Garbage collection, finalizers, graceful pod deletion, workloads and namespaces."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "default"
MERGE = "application/merge-patch+json"


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60) -> Any:
    return await until(check, timeout=timeout, what=what)


class Apis:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)

    async def cm(self, name: str, owners: list[Any] = (), **meta: Any) -> Any:  # type: ignore[assignment]
        refs = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name,
             "uid": o.metadata.uid, **extra}
            for o, extra in owners
        ]  # fmt: skip
        body = {"metadata": {"name": name, "ownerReferences": refs, **meta}}
        return await self.core.create_namespaced_config_map(NS, body)

    async def gone(self, name: str) -> bool:
        try:
            await self.core.read_namespaced_config_map(name, NS)
        except ApiException as exc:
            assert exc.status == 404
            return True
        return False


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def apis(kube_emulator):
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kube_emulator.kubeconfig),
                                  client_configuration=cfg)  # fmt: skip
    api_client = client.ApiClient(configuration=cfg)
    yield Apis(api_client)
    await api_client.close()


async def test_gc_background(apis):
    owner = await apis.cm("bg-owner")
    other = await apis.cm("bg-other")
    await apis.cm("bg-dep1", [(owner, {})])
    await apis.cm("bg-dep2", [(owner, {"controller": True})])
    await apis.cm("bg-shared", [(owner, {}), (other, {})])
    await apis.core.delete_namespaced_config_map("bg-owner", NS)
    assert await apis.gone("bg-owner")
    await wait_for(lambda: apis.gone("bg-dep1"), "bg-dep1 collected")
    await wait_for(lambda: apis.gone("bg-dep2"), "bg-dep2 collected")

    async def shared_trimmed() -> bool:
        shared = await apis.core.read_namespaced_config_map("bg-shared", NS)
        return [r.name for r in shared.metadata.owner_references] == ["bg-other"]

    await wait_for(shared_trimmed, "the vanished owner dropped from a shared dependant")


async def test_gc_foreground_waits_for_blocking_dependants(apis):
    owner = await apis.cm("fg-owner")
    await apis.cm("fg-block", [(owner, {"blockOwnerDeletion": True})],
                  finalizers=["example.com/hold"])  # fmt: skip
    await apis.core.delete_namespaced_config_map(
        "fg-owner", NS, body={"propagationPolicy": "Foreground"}
    )

    async def owner_waiting() -> Any:
        obj = await apis.core.read_namespaced_config_map("fg-owner", NS)
        dep = await apis.core.read_namespaced_config_map("fg-block", NS)
        return obj.metadata.deletion_timestamp and dep.metadata.deletion_timestamp and obj

    obj = await wait_for(owner_waiting, "foreground deletion in progress")
    assert obj.metadata.finalizers == ["foregroundDeletion"]
    await asyncio.sleep(0.3)
    assert not await apis.gone("fg-owner")  # still blocked by the dependant's finalizer
    await apis.core.patch_namespaced_config_map(
        "fg-block", NS, {"metadata": {"finalizers": None}}, _content_type=MERGE
    )
    await wait_for(lambda: apis.gone("fg-block"), "dependant removed")
    await wait_for(lambda: apis.gone("fg-owner"), "owner removed after its dependants")


async def test_gc_orphan(apis):
    owner = await apis.cm("or-owner")
    await apis.cm("or-dep", [(owner, {})])
    await apis.core.delete_namespaced_config_map("or-owner", NS, propagation_policy="Orphan")
    await wait_for(lambda: apis.gone("or-owner"), "orphaning owner removed")
    dep = await apis.core.read_namespaced_config_map("or-dep", NS)
    assert not dep.metadata.owner_references


async def test_finalizer_lingers_until_removed(apis):
    body = {
        "metadata": {"name": "held", "finalizers": ["example.com/keep"]},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    await apis.core.create_namespaced_pod(NS, body)
    await apis.core.delete_namespaced_pod("held", NS)
    pod = await apis.core.read_namespaced_pod("held", NS)
    assert pod.metadata.deletion_timestamp is not None
    await asyncio.sleep(0.3)
    pod = await apis.core.read_namespaced_pod("held", NS)  # still there
    assert pod.metadata.finalizers == ["example.com/keep"]
    await apis.core.patch_namespaced_pod(
        "held", NS, [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    with pytest.raises(ApiException) as exc:
        await apis.core.read_namespaced_pod("held", NS)
    assert exc.value.status == 404


async def test_graceful_pod_deletion_and_logs(apis, kube_emulator):
    body = {"metadata": {"name": "bound"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await apis.core.create_namespaced_pod(NS, body)
    # Like the real server, binding answers a Status the generated model cannot hold.
    resp = await apis.core.create_namespaced_pod_binding(
        "bound",
        NS,
        {"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False,
    )
    assert resp.status == 201
    resp.release()
    logs = kube_emulator.workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{NS}_bound_c.log").write_text("one\ntwo\nthree\n")
    assert await apis.core.read_namespaced_pod_log("bound", NS) == "one\ntwo\nthree\n"
    assert await apis.core.read_namespaced_pod_log("bound", NS, tail_lines=1) == "three\n"
    await apis.core.delete_namespaced_pod("bound", NS)
    pod = await apis.core.read_namespaced_pod("bound", NS)
    assert pod.spec.node_name == "n1" and pod.metadata.deletion_grace_period_seconds == 30
    await apis.core.delete_namespaced_pod("bound", NS, grace_period_seconds=0)
    with pytest.raises(ApiException) as exc:
        await apis.core.read_namespaced_pod("bound", NS)
    assert exc.value.status == 404


async def test_deployment_replicaset_pods(apis):
    labels = {"app": "dep"}
    body = {
        "metadata": {"name": "dep"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }  # fmt: skip
    await apis.apps.create_namespaced_deployment(NS, body)

    async def pods(n: int) -> Any:
        listed = await apis.core.list_namespaced_pod(NS, label_selector="app=dep")
        return len(listed.items) == n

    await wait_for(lambda: pods(3), "three pods")
    items = (await apis.core.list_namespaced_pod(NS, label_selector="app=dep")).items
    assert all(p.status.phase == "Pending" for p in items)  # no kubelet in this module
    rs_list = await apis.apps.list_namespaced_replica_set(NS, label_selector="app=dep")
    (rs,) = rs_list.items
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in items)
    hash_label = rs.metadata.labels["pod-template-hash"]
    assert all(p.metadata.labels["pod-template-hash"] == hash_label for p in items)

    async def status() -> Any:
        dep = await apis.apps.read_namespaced_deployment_status("dep", NS)
        return dep.status.replicas == 3 and dep.status.observed_generation == 1 and dep

    dep = await wait_for(status, "deployment status")
    assert not dep.status.available_replicas
    scale = await apis.apps.patch_namespaced_deployment_scale(
        "dep", NS, {"spec": {"replicas": 1}}, _content_type=MERGE
    )
    assert scale.spec.replicas == 1 and scale.status.selector == "app=dep"
    await wait_for(lambda: pods(1), "scaled down to one pod")
    await apis.apps.delete_namespaced_deployment("dep", NS)
    await wait_for(lambda: pods(0), "pods collected with the deployment")
    rs_list = await apis.apps.list_namespaced_replica_set(NS, label_selector="app=dep")
    assert rs_list.items == []


async def test_namespace_deletion_empties_it(apis):
    await apis.core.create_namespace({"metadata": {"name": "doomed"}})
    await apis.core.create_namespaced_config_map("doomed", {"metadata": {"name": "x"}})
    await apis.core.delete_namespace("doomed")

    async def gone() -> bool:
        try:
            await apis.core.read_namespace("doomed")
        except ApiException as exc:
            return exc.status == 404
        return False

    await wait_for(gone, "namespace removed")
    with pytest.raises(ApiException) as exc:
        await apis.core.read_namespaced_config_map("x", "doomed")
    assert exc.value.status == 404
