"""Simulated pods: Running and Ready with an IP at once, no process; chosen per kubelet or pod."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.kube.apiserver import launch
from tests.kube.kubelet.api import RawApi
from tests.kube.kubelet.simulated import ANNOTATION
from tests.kube.kubelet.testing import Kube, container_status, pod, ready, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

# A program that cannot start: a pod that ran it as a process could never be Ready.
MISSING = ["/nonexistent/bin/never-runs"]


async def _kube(tmp_path_factory: Any, simulated: bool, ns: str) -> AsyncIterator[Kube]:
    cluster = await launch(tmp_path_factory.mktemp("kube"), kubelet=True, simulated=simulated)
    api = await RawApi.from_kubeconfig(cluster.kubeconfig)
    try:
        k = Kube(api, cluster.workdir, ns)
        await k.ensure_namespace()
        yield k
    finally:
        await api.close()
        await cluster.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def simulated(tmp_path_factory: Any) -> AsyncIterator[Kube]:
    async for k in _kube(tmp_path_factory, True, "sim"):
        yield k


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def processes(tmp_path_factory: Any) -> AsyncIterator[Kube]:
    async for k in _kube(tmp_path_factory, False, "proc"):
        yield k


def annotated(body: dict[str, Any], value: str) -> dict[str, Any]:
    body["metadata"]["annotations"] = {ANNOTATION: value}
    return body


async def _ready_pod(kube: Kube, name: str) -> dict[str, Any]:
    return await kube.wait_pod(name, ready, "Ready")


async def test_a_simulated_pod_is_running_and_ready_without_a_process(simulated: Kube) -> None:
    body = pod("sim-a", MISSING, labels={"app": "sim-a"})
    body["spec"]["initContainers"] = [{"name": "setup", "image": "x", "command": MISSING}]
    body["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 1}}
    await simulated.create("pods", body)
    got = await _ready_pod(simulated, "sim-a")
    status = got["status"]
    assert status["phase"] == "Running" and status["podIP"].startswith("127.1.")
    assert got["spec"]["nodeName"] == "emulated-node"
    cs = container_status(got)
    assert cs["ready"] is True and "running" in cs["state"]
    init = status["initContainerStatuses"][0]["state"]["terminated"]
    assert init["exitCode"] == 0
    assert simulated.log("sim-a") == "" and simulated.log("sim-a", "setup") == ""

    # EndpointSlices see it like any ready pod.
    service = {"metadata": {"name": "sim-a"},
               "spec": {"selector": {"app": "sim-a"}, "ports": [{"port": 80}]}}  # fmt: skip
    await simulated.create("services", service)

    async def endpoint() -> list[str]:
        path = simulated.path("endpointslices", group="apis/discovery.k8s.io/v1")
        slices = await simulated.api.request("GET", path)
        return [a for s in slices["items"] for e in s.get("endpoints") or []
                for a in e["addresses"] if e["conditions"].get("ready")]  # fmt: skip

    assert await wait_for(endpoint, what="a ready endpoint") == [status["podIP"]]


async def test_a_deleted_simulated_pod_is_gone_at_once(simulated: Kube) -> None:
    body = pod("sim-b", MISSING)
    body["spec"]["terminationGracePeriodSeconds"] = 30
    await simulated.create("pods", body)
    await _ready_pod(simulated, "sim-b")
    await simulated.delete("pods", "sim-b")

    async def gone() -> bool:
        return await simulated.get("pods", "sim-b") is None

    # A process pod would wait out its grace period (capped at 10 s) for SIGTERM.
    await wait_for(gone, timeout=5, what="sim-b removed")


async def test_the_annotation_makes_one_pod_run_as_a_process(simulated: Kube) -> None:
    script = "import time; print('started', flush=True); time.sleep(600)"
    await simulated.create("pods", annotated(pod("real", [sys.executable, "-c", script]), "false"))
    await simulated.wait_log("real", "started")
    await simulated.delete("pods", "real")


async def test_the_annotation_simulates_one_pod_on_a_process_kubelet(processes: Kube) -> None:
    await processes.create("pods", annotated(pod("sim-c", MISSING), "true"))
    got = await _ready_pod(processes, "sim-c")
    assert got["status"]["phase"] == "Running" and processes.log("sim-c") == ""
    # without the annotation the same pod is run, and fails: its program does not exist
    await processes.create("pods", pod("plain", MISSING, restartPolicy="Never"))
    plain = await processes.wait_pod(
        "plain", lambda p: p.get("status", {}).get("phase") == "Failed", "Failed"
    )
    assert container_status(plain)["state"]["terminated"]["exitCode"] != 0
