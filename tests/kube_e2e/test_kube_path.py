"""The Kubernetes production path end to end, on the emulator with real Traefik.

One stack for the module: the API emulator with its process kubelet, Traefik
routing from our CRDs, the controller and two api replicas (kubernetes
backend). Clients talk to the api through Traefik, and to schedulers through
Traefik's TLS passthrough.
"""

from __future__ import annotations

import threading
import urllib.request

import dask_gateway
import pytest
from dask_gateway.auth import BasicAuth as UpstreamBasicAuth

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import basic
from tests.polling import wait_for

from .stack import NAMESPACE, PODS, Stack, http

pytestmark = pytest.mark.kube

TIMEOUT = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("kube-path"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def running(stack):
    """One RUNNING cluster of carol's (our client), shared by the tests that follow."""
    gw = Gateway(stack.address, proxy_address=stack.proxy_address, auth=BasicAuth("carol"))
    cluster = gw.new_cluster(shutdown_on_close=True)
    yield cluster
    cluster.shutdown()
    gw.close()


def upstream(stack: Stack, user: str) -> dask_gateway.Gateway:
    return dask_gateway.Gateway(
        stack.address, proxy_address=stack.proxy_address, auth=UpstreamBasicAuth(user, "")
    )


def ours(stack: Stack, user: str) -> Gateway:
    return Gateway(stack.address, proxy_address=stack.proxy_address, auth=BasicAuth(user))


@pytest.mark.parametrize("make_gateway, user", [(upstream, "alice"), (ours, "bob")])
def test_client_lifecycle_through_traefik(stack: Stack, make_gateway, user) -> None:
    with make_gateway(stack, user) as gw:
        assert gw.list_clusters() == []
        opts = gw.cluster_options()
        assert opts.worker_cores == 1
        cluster = gw.new_cluster(worker_cores=1)
        try:
            assert cluster.name.startswith("dask.")  # <namespace>.<name>, as upstream
            assert [c.name for c in gw.list_clusters()] == [cluster.name]
            cluster.scale(2)
            client = cluster.get_client(set_as_default=False)
            client.wait_for_workers(2, timeout=TIMEOUT)
            assert client.submit(lambda x: x + 1, 41).result(timeout=TIMEOUT) == 42
            assert len(stack.pods(cluster.name, "dask-worker")) == 2
            cluster.scale(1)
            wait_for(
                lambda: len(client.scheduler_info()["workers"]) == 1,
                timeout=TIMEOUT,
                what="scale down to 1",
            )
            assert sum(client.gather(client.map(lambda x: x * 2, range(10)))) == 90
            wait_for(
                lambda: len(stack.pods(cluster.name, "dask-worker")) == 1,
                timeout=TIMEOUT,
                what="one worker pod left",
            )
            client.close()
        finally:
            cluster.shutdown()
            cluster.close()
        # STOPPING clusters are not listed as active. The next request may reach the
        # other api replica, whose informer sees the stop a moment later.
        wait_for(lambda: gw.list_clusters() == [], timeout=10, what="the stop on every replica")
        wait_for(
            lambda: [c.name for c in gw.list_clusters(status="stopped")] == [cluster.name],
            timeout=TIMEOUT,
            what="the controller to report the cluster stopped",
        )
        assert not stack.pods(cluster.name, "dask-scheduler")


def test_invalid_options_never_reach_the_api_server(stack: Stack) -> None:
    before = len(stack.daskclusters())
    status, body = http(
        stack.address + "/api/v1/clusters/",
        "POST",
        {"cluster_options": {"worker_cores": 99}},
        user="dave",
    )
    assert status == 422 and body["error"] == "invalid"
    assert len(stack.daskclusters()) == before


def test_deleted_worker_pod_is_replaced(stack: Stack, running) -> None:
    running.scale(1)
    client = running.get_client(set_as_default=False)
    client.wait_for_workers(1, timeout=TIMEOUT)
    (first,) = wait_for(
        lambda: stack.pods(running.name, "dask-worker"), timeout=TIMEOUT, what="a worker pod"
    )
    victim = first["metadata"]["name"]
    stack.call(lambda c: c.delete(PODS, victim, "dask"))

    def replaced() -> bool:
        names = [p["metadata"]["name"] for p in stack.pods(running.name, "dask-worker")]
        return len(names) == 1 and victim not in names

    wait_for(replaced, timeout=TIMEOUT, what="a replacement worker pod")
    wait_for(
        lambda: (
            victim not in client.scheduler_info()["workers"]
            and len(client.scheduler_info()["workers"]) == 1
        ),
        timeout=TIMEOUT,
        what="the replacement joining the scheduler",
    )
    client.close()


def test_adaptive_starts_a_worker_on_demand_and_returns_to_zero(stack: Stack, running) -> None:
    running.adapt(minimum=0, maximum=2)
    client = running.get_client(set_as_default=False)
    wait_for(
        lambda: not stack.pods(running.name, "dask-worker"),
        timeout=TIMEOUT,
        what="adaptive scale to 0",
    )
    assert client.submit(lambda: 7).result(timeout=TIMEOUT) == 7  # needs a worker: one starts
    wait_for(
        lambda: (
            not client.scheduler_info()["workers"] and not stack.pods(running.name, "dask-worker")
        ),
        timeout=TIMEOUT,
        what="back to 0 workers when idle",
    )
    client.close()


def test_dashboard_through_traefik_needs_the_owners_login(stack: Stack, running) -> None:
    url = f"{stack.address}/clusters/{running.name}/status"
    assert http(url)[0] == 401
    assert http(url, user="mallory")[0] == 403
    req = urllib.request.Request(url, headers={"Authorization": basic("carol")})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        assert b"Dask" in resp.read()


def test_heartbeats_patch_replicas_only_on_change_and_only_from_the_pod(
    stack: Stack, running
) -> None:
    token = stack.cluster_token(running.name)
    url = f"{stack.address}/api/v1/clusters/{running.name}/heartbeat"
    auth = {"Authorization": f"token {token}"}
    before = stack.daskcluster(running.name)
    replicas = before["spec"]["replicas"]
    pod_ip = stack.pods(running.name, "dask-scheduler")[0]["status"]["podIP"]
    same = {"count": replicas, "scheduler_address": f"tls://{pod_ip}:8786"}
    for _ in range(3):
        assert http(url, "POST", same, headers=auth)[0] == 200
    after = stack.daskcluster(running.name)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]  # no spec write
    status, body = http(
        url,
        "POST",
        {"count": replicas, "scheduler_address": "tls://10.9.9.9:8786"},
        headers=auth,
    )
    assert status == 422 and body["error"] == "address_mismatch"
    assert http(url, "POST", same, headers={"Authorization": "token nope"})[0] == 401


def test_events_come_from_the_controllers_conditions(stack: Stack, running) -> None:
    status, body = http(f"{stack.address}/api/v1/clusters/{running.name}/events", user="carol")
    assert status == 200 and body["status"] == "RUNNING"
    assert any(e["kind"] == "Ready=True" for e in body["events"]), body["events"]


def test_restarted_api_replica_serves_the_same_clusters(stack: Stack, running) -> None:
    replica = stack.replicas[1]
    replica.stop()
    replica.start()
    status, body = replica.request("GET", f"/api/v1/clusters/{running.name}", user="carol")
    assert status == 200 and body["status"] == "RUNNING"
    assert body["tls_cert"] and body["tls_key"]
    status, _ = replica.request(
        "POST", f"/api/v1/clusters/{running.name}/scale", {"count": 1}, user="carol"
    )
    assert status == 200
    wait_for(
        lambda: len(stack.pods(running.name, "dask-worker")) == 1,
        timeout=TIMEOUT,
        what="a worker started through the restarted replica",
    )


def test_cluster_created_on_one_replica_is_served_by_the_other(stack: Stack) -> None:
    a, b = stack.replicas
    status, body = a.request("POST", "/api/v1/clusters/", {"cluster_options": {}}, user="erin")
    assert status == 201
    name = body["name"]
    wait_for(
        lambda: name in (b.request("GET", "/api/v1/clusters/", user="erin")[1] or {}),
        timeout=10,
        what="the cluster listed by the other replica",
    )
    status, body = b.request("GET", f"/api/v1/clusters/{name}?wait", user="erin")
    assert status == 200 and body["status"] == "RUNNING"
    status, _ = b.request("POST", f"/api/v1/clusters/{name}/scale", {"count": 1}, user="erin")
    assert status == 200
    wait_for(lambda: stack.pods(name, "dask-worker"), timeout=TIMEOUT, what="worker via B")
    assert b.request("DELETE", f"/api/v1/clusters/{name}", user="erin")[0] == 204
    wait_for(
        lambda: (
            a.request("GET", f"/api/v1/clusters/{name}", user="erin")[1]["status"]
            in ("STOPPED", "STOPPING")
        ),
        timeout=10,
        what="the stop seen by the first replica",
    )
    assert a.request("GET", "/api/v1/clusters/", user="erin")[1] == {}


def test_concurrent_creates_on_two_replicas_respect_the_quota(stack: Stack) -> None:
    results: list[tuple[int, object]] = []
    barrier = threading.Barrier(4)

    def create(index: int) -> None:
        replica = stack.replicas[index % 2]
        barrier.wait()
        results.append(
            replica.request("POST", "/api/v1/clusters/", {"cluster_options": {}}, user="quota")
        )

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [body["name"] for status, body in results if status == 201]
    refused = [body for status, body in results if status != 201]
    assert len(created) == 1, results
    assert all(body["error"] == "quota_exceeded" for body in refused), refused
    mine = [
        d
        for d in stack.daskclusters()
        if d["spec"]["username"] == "quota" and d["spec"].get("active", True)
    ]
    assert len(mine) == 1
    assert (
        stack.replicas[1].request("DELETE", f"/api/v1/clusters/{created[0]}", user="quota")[0]
        == 204
    )


def test_a_cluster_is_owned_by_its_users_notebook_pod_and_goes_with_it(stack: Stack) -> None:
    notebook = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "jupyter-nina",
            "labels": {"component": "singleuser-server"},
            "annotations": {"hub.jupyter.org/username": "nina"},
        },
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "python",
                    "command": ["python3", "-c", "import time; time.sleep(3600)"],
                }
            ]
        },
    }
    created = stack.call(lambda c: c.create(PODS, notebook, NAMESPACE))
    with ours(stack, "nina") as gw:
        name = gw.submit()
        owners = stack.daskcluster(name)["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
            ("Pod", "jupyter-nina", created["metadata"]["uid"])
        ]
        # another user's cluster is not bound to nina's pod
        with ours(stack, "omar") as other:
            unbound = other.submit()
            assert not stack.daskcluster(unbound)["metadata"].get("ownerReferences")
            # the notebook pod goes: Kubernetes itself removes nina's cluster, not omar's
            stack.call(lambda c: c.delete(PODS, "jupyter-nina", NAMESPACE, grace_period_seconds=0))
            wait_for(
                lambda: (
                    name
                    not in {f"{NAMESPACE}.{o['metadata']['name']}" for o in stack.daskclusters()}
                ),
                timeout=TIMEOUT,
                what="the garbage collector to remove nina's cluster",
            )
            assert stack.daskcluster(unbound)["spec"].get("active", True)
            other.stop_cluster(unbound)
