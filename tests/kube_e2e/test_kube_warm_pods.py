"""Warm scheduler pods end to end: emulator + kubelet, Traefik, controller, api replicas.

One stack for the module. The controller's seed profile is what the api writes
for a cluster with default options, so the first warm pod is claimable from
the start; an option that changes the scheduler's memory makes a cluster of
another profile, which gets a cold pod. Tests run in file order and build on
each other (the pool's state carries over).
"""

from __future__ import annotations

import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from jhub_gateway.hub_service.backends.kube.config import KubeClusterConfig, to_spec_config
from jhub_gateway.kube.client import KubeClient, NotFound
from tests.polling import wait_for

from .stack import DASKCLUSTERS, NAMESPACE, PODS, SECRETS, Stack

pytestmark = pytest.mark.kube

TIMEOUT = 60
WARM_SELECTOR = "app.kubernetes.io/component=dask-warm-scheduler"
API_OPTIONS = """
from jhub_gateway.options import Options, Float
c.GatewayApp.cluster_options = Options(
    Float("scheduler_memory", default=0.5, min=0.25, max=2, label="Scheduler memory (GiB)"),
    handler=lambda opts: {"scheduler_memory": "%fG" % opts.scheduler_memory},
)
"""


def _seed() -> dict:
    # what the api writes into spec.config for default options (stack.API_CONFIG + ours)
    return to_spec_config(KubeClusterConfig(scheduler_memory="0.5G", adaptive_period=1.0))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(
        tmp_path_factory.mktemp("kube-warm"),
        api_config=API_OPTIONS,
        controller_config=f"c.KubeController.warm_scheduler_config = {_seed()!r}\n",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def gateway(stack: Stack, user: str) -> Gateway:
    return Gateway(stack.address, proxy_address=stack.proxy_address, auth=BasicAuth(user))


def warm_pods(stack: Stack, ready: bool = False) -> list[dict]:
    async def listing(client: KubeClient) -> list[dict]:
        items, _ = await client.list(PODS, NAMESPACE, label_selector=WARM_SELECTOR)
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    pods = stack.call(listing)
    if ready:
        pods = [p for p in pods if _ready(p)]
    return pods


def _ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def get_pod(stack: Stack, name: str) -> dict | None:
    async def get(client: KubeClient) -> dict | None:
        try:
            return await client.get(PODS, name, NAMESPACE)
        except NotFound:
            return None

    return stack.call(get)


def secret_exists(stack: Stack, name: str) -> bool:
    async def get(client: KubeClient) -> bool:
        try:
            await client.get(SECRETS, name, NAMESPACE)
        except NotFound:
            return False
        return True

    return stack.call(get)


def client_workers(cluster) -> dict:
    with cluster.get_client(set_as_default=False) as client:
        return client.scheduler_info()["workers"]


def one_ready_warm_pod(stack: Stack) -> dict:
    return wait_for(lambda: (warm_pods(stack, ready=True) or [None])[0], TIMEOUT,
                    what="a ready warm pod")  # fmt: skip


def test_a_warm_pod_is_waiting_after_start(stack: Stack) -> None:
    pod = one_ready_warm_pod(stack)
    assert len(warm_pods(stack)) == 1
    assert secret_exists(stack, pod["metadata"]["name"])  # its claim Secret
    args = pod["spec"]["containers"][0]["args"]
    assert args[:3] == ["python", "-m", "jhub_gateway.runtime.warm_pod"]


def test_new_cluster_claims_the_warm_pod_and_the_pool_refills(stack: Stack) -> None:
    warm = one_ready_warm_pod(stack)["metadata"]["name"]
    gw = gateway(stack, "alice")
    cluster = gw.new_cluster()
    try:
        name = cluster.name.split(".", 1)[1]
        resource = stack.daskcluster(cluster.name)
        assert resource["status"]["schedulerPod"] == warm
        pod = get_pod(stack, warm)
        assert pod is not None
        labels = pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "dask-scheduler"
        assert labels["gateway.dask.org/cluster"] == name
        assert "jhubgateway.dask.org/warm-profile" not in labels
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "DaskCluster",
            resource["metadata"]["uid"],
            True,
        )
        assert [p["metadata"]["name"] for p in stack.pods(cluster.name, "dask-scheduler")] == [warm]
        # usable: the client reaches the scheduler through Traefik with the cluster's TLS
        with cluster.get_client(set_as_default=False) as client:
            assert client.scheduler_info()["type"] == "Scheduler"
        assert not secret_exists(stack, warm)  # the claim Secret is not needed any more
        refill = one_ready_warm_pod(stack)["metadata"]["name"]
        assert refill != warm
        # scaling works (heartbeats), and no heartbeat was ever refused for want of its
        # pod: status.schedulerPod named the warm pod before its scheduler started
        cluster.scale(1)
        wait_for(lambda: len(client_workers(cluster)) == 1, TIMEOUT, what="one worker")
        refused = f"503 POST /api/v1/clusters/{cluster.name}/heartbeat"
        assert not any(refused in r.proc.text() for r in stack.replicas)
    finally:
        cluster.shutdown()
        gw.close()
    wait_for(lambda: get_pod(stack, warm) is None, TIMEOUT, what="the claimed pod deleted on stop")


def test_other_scheduler_options_get_a_cold_pod(stack: Stack) -> None:
    warm = one_ready_warm_pod(stack)["metadata"]["name"]
    gw = gateway(stack, "bob")
    cluster = gw.new_cluster(scheduler_memory=1.0)
    try:
        name = cluster.name.split(".", 1)[1]
        assert stack.daskcluster(cluster.name)["status"]["schedulerPod"] == f"dask-scheduler-{name}"
        assert [p["metadata"]["name"] for p in warm_pods(stack)] == [warm]  # left alone
    finally:
        cluster.shutdown()
        gw.close()


def test_deleting_the_daskcluster_deletes_its_claimed_pod(stack: Stack) -> None:
    warm = one_ready_warm_pod(stack)["metadata"]["name"]
    gw = gateway(stack, "carol")
    cluster = gw.new_cluster(shutdown_on_close=False)
    name = cluster.name.split(".", 1)[1]
    assert stack.daskcluster(cluster.name)["status"]["schedulerPod"] == warm
    stack.call(lambda c: c.delete(DASKCLUSTERS, name, NAMESPACE))
    wait_for(lambda: get_pod(stack, warm) is None, TIMEOUT, what="the garbage collector")
    gw.close()


def _controller(stack: Stack):
    return next(p for p in stack.procs if p.name == "controller")


def test_a_stopped_leader_deletes_its_warm_pods_and_zero_creates_none(stack: Stack) -> None:
    pod = one_ready_warm_pod(stack)["metadata"]["name"]
    controller = _controller(stack)
    controller.stop()
    stack.procs.remove(controller)
    assert warm_pods(stack) == [] and not secret_exists(stack, pod)  # before it exited
    stack.controller_config += "c.KubeController.warm_scheduler_pods = 0\n"
    stack._start_controller()
    gw = gateway(stack, "dave")
    cluster = gw.new_cluster()
    try:
        name = cluster.name.split(".", 1)[1]
        assert stack.daskcluster(cluster.name)["status"]["schedulerPod"] == f"dask-scheduler-{name}"
        assert warm_pods(stack) == []
    finally:
        cluster.shutdown()
        gw.close()
