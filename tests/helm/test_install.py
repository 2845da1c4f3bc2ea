"""The seed's install guide, on the emulator: real Helm installs, kubectl, the upstream client.

One emulator (RBAC enforced) and one ``helm upgrade --install`` per module: the
api, controller and Traefik run from the rendered Deployments on the process
kubelet, and ``Gateway("http://<EXTERNAL-IP>")`` does what the guide says.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any, NamedTuple

import helm_python as helm
import pytest
from dask_gateway import BasicAuth, Gateway

from tests.polling import wait_for

from .chart import FULLNAME, NAMESPACE
from .install import (
    CONFIG_YAML,
    PASSWORD,
    EmulatorThread,
    Release,
    api_routed,
    kubectl,
    kubectl_json,
)

pytestmark = [pytest.mark.kube]

UPGRADE_YAML = CONFIG_YAML.replace("gateway:\n", "gateway:\n  replicas: 2\n  loglevel: DEBUG\n", 1)

API = f"api-{FULLNAME}"
TRAEFIK = f"traefik-{FULLNAME}"
CONTROLLER = f"controller-{FULLNAME}"


class Installed(NamedTuple):
    kube: EmulatorThread
    release: Release
    external_ip: str

    def kubectl(self, *args: str) -> str:
        return kubectl(self.kube.kubeconfig, *args)

    def get(self, *args: str) -> Any:
        return kubectl_json(self.kube.kubeconfig, "get", "-n", NAMESPACE, *args)

    def wait_stopped(self) -> None:
        """Stopped clusters keep their record (completedClusterMaxAge, as upstream) with
        its Service and Secret until it is deleted; no pod of theirs is left."""

        def stopped() -> bool:
            phases = [d.get("status", {}).get("phase") for d in self.get("daskcluster")["items"]]
            return all(p == "Stopped" for p in phases)

        try:
            wait_for(stopped, timeout=60, what="clusters stopped")
        except TimeoutError:
            raise AssertionError(self.kubectl("get", "daskcluster,pods", "-n", NAMESPACE)) from None

        def children() -> list[str]:
            found = self.get("pods", "-l", "gateway.dask.org/cluster")["items"]
            return [f"{i['kind']}/{i['metadata']['name']}" for i in found]

        try:
            wait_for(lambda: children() == [], timeout=30, what="stopped clusters' pods gone")
        except TimeoutError:
            raise AssertionError(f"left behind: {children()}") from None

    def gateway(self) -> Gateway:
        return Gateway(f"http://{self.external_ip}", auth=BasicAuth("alice", PASSWORD))


def services_table(text: str) -> dict[str, dict[str, str]]:
    """``kubectl get service`` output as {name: {column: value}}."""
    header, *rows = text.strip().splitlines()
    columns = header.split()
    return {r.split()[0]: dict(zip(columns, r.split(), strict=True)) for r in rows}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    kube = EmulatorThread(tmp_path_factory.mktemp("helm-install")).start()
    release = None
    try:
        release = Release(kube.kubeconfig)
        release.upgrade_install(CONFIG_YAML)
        svc = kubectl_json(kube.kubeconfig, "get", "service", "-n", NAMESPACE, TRAEFIK)
        ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        api_routed(ip)
        yield Installed(kube, release, ip)
    finally:
        if release is not None:
            release.close()
        kube.stop()


def running_pods(inst: Installed, component: str) -> list[dict]:
    pods = inst.get("pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_seed_flow_kubectl_and_upstream_client(installed: Installed) -> None:
    table = services_table(installed.kubectl("get", "service", "--namespace", NAMESPACE))
    assert set(table) == {API, TRAEFIK}
    assert table[API]["TYPE"] == "ClusterIP"
    assert table[API]["EXTERNAL-IP"] == "<none>"
    assert table[API]["PORT(S)"] == "8000/TCP"
    assert table[TRAEFIK]["TYPE"] == "LoadBalancer"
    assert table[TRAEFIK]["EXTERNAL-IP"] == installed.external_ip
    assert re.fullmatch(r"127\.4\.\d+\.\d+", installed.external_ip)
    assert re.fullmatch(r"80:3\d{4}/TCP", table[TRAEFIK]["PORT(S)"])

    listing = installed.kubectl("get", "daskcluster", "-n", NAMESPACE, "-o", "yaml")
    assert "items: []" in listing and "kind: List" in listing

    # The api, controller and Traefik run from the rendered Deployments.
    for component in ("api", "controller", "traefik"):
        (pod,) = running_pods(installed, component)
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["serviceAccountName"] == f"{FULLNAME}-{component}".replace(
            "-api", "-gateway"
        )

    gateway = installed.gateway()
    try:
        assert gateway.list_clusters() == []
        options = gateway.cluster_options()
        assert options.worker_cores == 1
        cluster = gateway.new_cluster(worker_cores=1, worker_memory=0.5)
        try:
            assert [c.name for c in gateway.list_clusters()] == [cluster.name]
            cluster.scale(1)
            with cluster.get_client(set_as_default=False) as client:
                client.wait_for_workers(1, timeout=120)
                assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
            (dc,) = installed.get("daskcluster")["items"]
            assert cluster.name == f"{NAMESPACE}.{dc['metadata']['name']}"
        finally:
            cluster.shutdown()
        wait_for(lambda: gateway.list_clusters() == [], timeout=60, what="cluster stopped")
        installed.wait_stopped()
    finally:
        gateway.close()


def test_traefik_presents_the_charts_default_certificate(installed: Installed) -> None:
    # the file provider read it: Traefik no longer mints a key on each routing change
    secret = installed.get("secret", f"{TRAEFIK}-default-tls")
    expected = ssl.PEM_cert_to_DER_cert(base64.b64decode(secret["data"]["tls.crt"]).decode())
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE

    def presented() -> bytes:
        with socket.create_connection((installed.external_ip, 80), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname="not-a-cluster") as tls:
                return tls.getpeercert(binary_form=True) or b""

    wait_for(lambda: presented() == expected, timeout=30, what="Traefik's default certificate")


def test_components_hold_only_their_own_permissions(installed: Installed) -> None:
    def can(sa: str, verb: str, resource: str, namespace: str = NAMESPACE) -> bool:
        plural, _, rest = resource.partition(".")
        group = rest.split("/")[0]
        sub = resource.split("/")[1] if "/" in resource else ""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{NAMESPACE}:{sa}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": group,
                    "resource": plural.split("/")[0],
                    "subresource": sub,
                },  # fmt: skip
            },
        }
        out = kubectl_stdin(installed, json.dumps(review), "create", "-f", "-", "-o", "json")
        return bool(json.loads(out)["status"].get("allowed"))

    api, controller, traefik = (f"{FULLNAME}-{c}" for c in ("gateway", "controller", "traefik"))
    assert can(api, "create", "daskclusters.jhubgateway.dask.org")
    assert not can(api, "create", "pods")
    assert not can(api, "delete", "secrets")
    assert can(controller, "create", "pods")
    assert can(controller, "patch", "daskclusters.jhubgateway.dask.org/status")
    assert not can(controller, "create", "daskclusters.jhubgateway.dask.org")
    assert can(controller, "delete", "daskclusters.jhubgateway.dask.org")  # completed ones
    assert not can(controller, "list", "secrets", "default")
    assert can(traefik, "watch", "ingressroutes.traefik.io")
    assert not can(traefik, "create", "ingressroutes.traefik.io")
    assert not can(traefik, "get", "secrets", "default")


def test_misspelt_key_fails_install_naming_it(installed: Installed) -> None:
    typo = Release(installed.kube.kubeconfig, name="typo")
    try:
        with pytest.raises(helm.HelmReleaseError) as info:
            typo.upgrade_install("gateway:\n  auth:\n    tpye: simple\n")
        assert "- at '/gateway/auth': additional properties 'tpye' not allowed" in str(info.value)
        assert [r["name"] for r in typo.config.list(all_states=True)] == [installed.release.name]
    finally:
        typo.close()


def kubectl_stdin(inst: Installed, stdin: str, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(inst.kube.kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_upgrade_rolls_pods_keeps_cluster_then_uninstall_cleans_up(installed: Installed) -> None:
    gateway = installed.gateway()
    cluster = gateway.new_cluster()
    try:
        cluster.scale(1)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(1, timeout=120)
        before = {p["metadata"]["name"] for p in running_pods(installed, "api")}
        default_tls = installed.get("secret", f"{TRAEFIK}-default-tls")["data"]

        installed.release.upgrade_install(UPGRADE_YAML)
        api_routed(installed.external_ip)

        after = running_pods(installed, "api")
        assert len(after) == 2
        assert not before & {p["metadata"]["name"] for p in after}  # rolled, not kept
        assert all(p["status"]["phase"] == "Running" for p in after)
        assert installed.get("secret", f"{TRAEFIK}-default-tls")["data"] == default_tls  # kept
        assert client.submit(sum, [4, 5]).result(timeout=60) == 9
        assert [c.name for c in gateway.list_clusters()] == [cluster.name]
        client.close()
    finally:
        cluster.shutdown()
        gateway.close()

    installed.wait_stopped()

    installed.release.uninstall()

    def leftovers() -> list[str]:
        kinds = "pods,services,deployments,replicasets,configmaps,secrets,serviceaccounts," \
                "roles,rolebindings,ingressroutes.traefik.io,middlewares.traefik.io," \
                "daskclusters.jhubgateway.dask.org"  # fmt: skip
        items = installed.get(kinds)["items"]
        return [
            f"{i['kind']}/{i['metadata']['name']}"
            for i in items
            if not (i["kind"] == "ServiceAccount" and i["metadata"]["name"] == "default")
        ]

    try:
        wait_for(lambda: leftovers() == [], timeout=60, what="namespace emptied by uninstall")
    except TimeoutError:
        raise AssertionError(f"left behind by helm uninstall: {leftovers()}") from None
    cluster_wide = kubectl_json(
        installed.kube.kubeconfig, "get", "clusterroles,clusterrolebindings",
        "-l", f"app.kubernetes.io/instance={installed.release.name}",
    )  # fmt: skip
    assert cluster_wide["items"] == []
