"""Real Helm (the Helm v4 SDK, helm-python-sdk) installs, upgrades and uninstalls on the emulator.

The fixture chart ``charts/fidelity`` holds a CRD and an object of it, a
Deployment, a Service, a Job, an HPA, a PDB, a NetworkPolicy and RBAC. Helm
runs with its own defaults (server-side apply, OpenAPI validation) and waits
with the ``watcher`` strategy (kstatus: Deployment ready, Job complete), over
HTTPS with the admin kubeconfig. Helm's calls block, so they run in a thread
while the emulator serves from this event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import helm_python as helm
import pytest
import pytest_asyncio

from tests.kube.accounts import issue_token
from tests.kube.apiserver import KubeCluster
from tests.kube.kubelet.api import ApiError, RawApi
from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

CHART = Path(__file__).parent / "charts" / "fidelity"
NS = "fidelity"
RELEASE = "fx"
TIMEOUT = 120


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls_kubeconfig(kube_cluster: KubeCluster) -> Path:
    return kube_cluster.emulator.write_kubeconfig(
        kube_cluster.workdir / "helm-kubeconfig", namespace=NS, tls=True
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(kube_cluster: KubeCluster) -> AsyncIterator[RawApi]:
    raw = await RawApi.from_kubeconfig(kube_cluster.kubeconfig)
    try:
        await raw.request("POST", "/api/v1/namespaces",
                          body={"metadata": {"name": NS}})  # fmt: skip
        yield raw
    finally:
        await raw.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def release(tls_kubeconfig: Path, api: RawApi) -> AsyncIterator[helm.Config]:
    config = helm.Config(kubeconfig_path=tls_kubeconfig, namespace=NS)
    try:
        yield config
    finally:
        config.close()


async def get(api: RawApi, path: str) -> dict[str, Any] | None:
    try:
        return await api.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _condition(obj: dict[str, Any], ctype: str) -> bool:
    return any(c["type"] == ctype and c["status"] == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])  # fmt: skip


CORE = f"/api/v1/namespaces/{NS}"
OBJECTS = {
    "configmap": f"{CORE}/configmaps/{RELEASE}-settings",
    "service": f"{CORE}/services/{RELEASE}-web",
    "serviceaccount": f"{CORE}/serviceaccounts/{RELEASE}-reader",
    "deployment": f"/apis/apps/v1/namespaces/{NS}/deployments/{RELEASE}-web",
    "job": f"/apis/batch/v1/namespaces/{NS}/jobs/{RELEASE}-migrate",
    "hpa": f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{RELEASE}-web",
    "pdb": f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{RELEASE}-web",
    "netpol": f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{RELEASE}-web",
    "role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/{RELEASE}-reader",
    "rolebinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings/"
    f"{RELEASE}-reader",
    "gadget": f"/apis/fixture.example.com/v1/namespaces/{NS}/gadgets/{RELEASE}-gadget",
}


async def test_install_waits_until_ready_and_the_job_completed(
    release: helm.Config, api: RawApi
) -> None:
    rel = await asyncio.to_thread(release.install, helm.Chart.load(CHART), RELEASE,
                                  wait="watcher", timeout=TIMEOUT)  # fmt: skip
    assert (rel["status"], rel["revision"]) == ("deployed", 1), rel["status"]
    # Helm returned only after kstatus saw everything current: no polling needed here.
    deploy = await api.request("GET", OBJECTS["deployment"])
    assert deploy["status"]["readyReplicas"] == 1 and _condition(deploy, "Available")
    job = await api.request("GET", OBJECTS["job"])
    assert _condition(job, "Complete") and job["status"]["succeeded"] == 1
    for name, path in OBJECTS.items():
        assert await get(api, path), f"{name} not installed"
    crd = await api.request(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.fixture.example.com"
    )
    assert _condition(crd, "Established")
    # Server-side apply by Helm: its field manager owns what the chart sets.
    cm = await api.request("GET", OBJECTS["configmap"])
    # (Helm v4 names its field manager after the program, here the Python interpreter.)
    (entry,) = [m for m in cm["metadata"]["managedFields"] if m["operation"] == "Apply"]
    assert set(entry["fieldsV1"]["f:data"]) == {"f:kept", "f:extra"}
    secrets = await api.request("GET", f"{CORE}/secrets",
                                query={"labelSelector": f"owner=helm,name={RELEASE}"})  # fmt: skip
    assert [s["metadata"]["labels"]["status"] for s in secrets["items"]] == ["deployed"]


async def test_upgrade_prunes_a_dropped_key_and_label(release: helm.Config, api: RawApi) -> None:
    before = await api.request("GET", OBJECTS["configmap"])
    assert before["data"] == {"kept": "1", "extra": "2"}
    assert before["metadata"]["labels"]["fixture.example.com/extra"] == "yes"
    rel = await asyncio.to_thread(release.upgrade, helm.Chart.load(CHART), RELEASE,
                                  {"extraKey": False, "extraLabel": False},
                                  wait="watcher", timeout=TIMEOUT)  # fmt: skip
    assert (rel["status"], rel["revision"]) == ("deployed", 2), rel["status"]
    after = await api.request("GET", OBJECTS["configmap"])
    assert after["data"] == {"kept": "1"}
    assert "fixture.example.com/extra" not in after["metadata"]["labels"]
    assert after["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The rest of the release is untouched: the Job is the same, still complete.
    job = await api.request("GET", OBJECTS["job"])
    assert _condition(job, "Complete")
    history = await asyncio.to_thread(release.history, RELEASE)
    assert [(r["revision"], r["status"]) for r in history] == [(1, "superseded"), (2, "deployed")]


async def test_release_service_account_reads_what_its_role_grants(
    kube_cluster: KubeCluster, api: RawApi
) -> None:
    token = await issue_token(kube_cluster.url, NS, f"{RELEASE}-reader")
    ctx = ssl.create_default_context(cadata=kube_cluster.emulator.ca_pem.decode())
    headers = {"Authorization": f"Bearer {token}"}
    base = kube_cluster.emulator.https_url
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(base + OBJECTS["configmap"], ssl=ctx) as resp:
            assert resp.status == 200
        async with session.get(base + f"{CORE}/secrets", ssl=ctx) as resp:
            assert resp.status == 403
            body = await resp.json()
        assert body["reason"] == "Forbidden"
        assert f"system:serviceaccount:{NS}:{RELEASE}-reader" in body["message"]


async def test_uninstall_removes_everything(release: helm.Config, api: RawApi) -> None:
    await asyncio.to_thread(release.uninstall, RELEASE, wait="watcher", timeout=TIMEOUT)
    for name, path in OBJECTS.items():
        assert await get(api, path) is None, f"{name} left behind"

    async def pods_gone() -> bool:
        pods = await api.request("GET", f"{CORE}/pods")
        return not pods["items"]

    await until(pods_gone, what="the release's pods collected")
    secrets = await api.request("GET", f"{CORE}/secrets", query={"labelSelector": "owner=helm"})
    assert secrets["items"] == []
    # Helm keeps CRDs (crds/ is install-only), as on a real cluster.
    assert await get(
        api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.fixture.example.com"
    )


async def test_install_of_an_unknown_field_fails_validation(
    release: helm.Config, api: RawApi, tmp_path: Path
) -> None:
    chart = tmp_path / "typo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: typo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndata: {a: b}\ndatta: {c: d}\n"
    )
    with pytest.raises(helm.HelmError) as exc:
        await asyncio.to_thread(release.install, helm.Chart.load(chart), "typo", timeout=TIMEOUT)
    assert 'unknown field "datta"' in str(exc.value)
    assert await get(api, f"{CORE}/configmaps/typo") is None
