"""The gateway next to zero-to-jupyterhub in one namespace, and a ``helm upgrade`` switching auth.

What z2jh would have created runs on the emulator first (the ``hub`` Secret
with ``hub.services.dask-gateway.apiToken``, a real JupyterHub behind the
``hub`` Service on 8081); the chart is installed with simple auth, then
upgraded with a config.yaml that says nothing but ``auth.type: jupyterhub``:
the api pods roll, find the hub and the service token on their own, the old
password stops working and a hub user's token does everything through Traefik.
One install per module (the upgrade is the second half of the story).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import aiohttp
import pytest
import yaml
from dask_gateway import BasicAuth, Gateway, JupyterHubAuth

from tests.polling import wait_for

from .chart import FULLNAME, NAMESPACE
from .install import EmulatorThread, Release, api_routed, kubectl, kubectl_json
from .z2jh import GATEWAY_SERVICE, HubApi, Z2jh

pytestmark = [pytest.mark.kube]

API = f"api-{FULLNAME}"
PASSWORD = "before-the-hub"
# the emulator's part (as in test_install): a rolled pod is Ready at its first answer
FAST_PROBE = """
  readinessProbe:
    initialDelaySeconds: 1
    periodSeconds: 2
"""
SIMPLE_YAML = f"""
gateway:{FAST_PROBE}
  auth:
    type: simple
    simple:
      password: {PASSWORD}
"""
# the operator's whole config.yaml next to z2jh: nothing about tokens or URLs
JUPYTERHUB_YAML = f"""
gateway:{FAST_PROBE}
  auth:
    type: jupyterhub
"""


class Setup(NamedTuple):
    kube: EmulatorThread
    release: Release
    hub: HubApi
    z2jh: Z2jh
    external_ip: str

    def kubectl(self, *args: str) -> str:
        return kubectl(self.kube.kubeconfig, *args)

    def get(self, *args: str) -> Any:
        return kubectl_json(self.kube.kubeconfig, "get", "-n", NAMESPACE, *args)

    @property
    def address(self) -> str:
        return f"http://{self.external_ip}"


def watch_started(setup: Setup, pod: str) -> bool:
    """Whether the api pod's log says its server watch runs (its own hub token works)."""

    def said() -> bool:
        return "server watch on" in setup.kubectl("logs", "-n", NAMESPACE, pod, "-c", "api")

    try:
        return bool(wait_for(said, timeout=30, what="server watch started with the service token"))
    except TimeoutError:
        log = setup.kubectl("logs", "-n", NAMESPACE, pod, "-c", "api")
        raise AssertionError(log[-3000:]) from None


def api_pods(setup: Setup) -> list[dict]:
    pods = setup.get("pods", "-l", "app.kubernetes.io/component=api")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    kube = EmulatorThread(tmp_path_factory.mktemp("helm-z2jh")).start()
    release = None
    try:
        z2jh = Z2jh()
        kubectl(kube.kubeconfig, "create", "namespace", NAMESPACE)
        path = kube.tmp / "z2jh.yaml"
        path.write_text(yaml.safe_dump_all(z2jh.manifests()))
        kubectl(kube.kubeconfig, "apply", "-n", NAMESPACE, "-f", str(path))
        # the hub starts while Helm installs the gateway
        release = Release(kube.kubeconfig)
        release.upgrade_install(SIMPLE_YAML)
        ip = kubectl_json(kube.kubeconfig, "get", "service", "-n", NAMESPACE, f"traefik-{FULLNAME}")
        svc = kubectl_json(kube.kubeconfig, "get", "service", "-n", NAMESPACE, "hub")
        hub = HubApi(svc["spec"]["clusterIP"], z2jh.admin_token)
        wait_for(lambda: hub.call("GET", "/")[0] == 200, timeout=90, what="hub API up")
        external_ip = ip["status"]["loadBalancer"]["ingress"][0]["ip"]
        api_routed(external_ip)
        yield Setup(kube, release, hub, z2jh, external_ip)
    finally:
        if release is not None:
            release.close()
        kube.stop()


def test_simple_auth_before_the_switch(setup: Setup) -> None:
    with Gateway(setup.address, auth=BasicAuth("alice", PASSWORD)) as gateway:
        assert gateway.list_clusters() == []
    secret = setup.get("secret", API)
    assert "simple-password" in secret["data"]


def test_upgrade_to_jupyterhub_finds_hub_and_token_and_drops_the_password(setup: Setup) -> None:
    before = {p["metadata"]["name"] for p in api_pods(setup)}

    setup.release.upgrade_install(JUPYTERHUB_YAML)
    api_routed(setup.external_ip)

    after = api_pods(setup)
    assert after and not before & {p["metadata"]["name"] for p in after}  # rolled
    (pod,) = after
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://hub:8081/hub/api"
    ref = env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hub", "key": f"hub.services.{GATEWAY_SERVICE}.apiToken"}
    assert "JHUB_GATEWAY_SIMPLE_PASSWORD" not in env
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    # nothing of the old auth is left in our Secret
    assert set(setup.get("secret", API)["data"]) == {"cookie-secret", "metrics-token"}

    # the service token from z2jh's Secret works at the hub: the api reads its own
    # role there (the server watch needs list:users and read:servers)
    assert watch_started(setup, pod["metadata"]["name"])

    with Gateway(setup.address, auth=BasicAuth("alice", PASSWORD)) as gateway:
        with pytest.raises(aiohttp.ClientResponseError) as info:
            gateway.list_clusters()
    assert info.value.status == 401


def test_hub_user_token_lists_creates_computes_and_stops(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = setup.hub.user_token("alice")
    # what a notebook of z2jh has: JUPYTERHUB_API_TOKEN, and auth="jupyterhub"
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    gateway = Gateway(setup.address, auth="jupyterhub")
    try:
        assert gateway.list_clusters() == []
        cluster = gateway.new_cluster()
        try:
            (dc,) = setup.get("daskcluster")["items"]
            assert dc["spec"]["username"] == "alice"  # the hub's name for the token
            cluster.scale(1)
            with cluster.get_client(set_as_default=False) as client:
                client.wait_for_workers(1, timeout=120)
                assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
            assert [c.name for c in gateway.list_clusters()] == [cluster.name]
        finally:
            cluster.shutdown()
        wait_for(lambda: gateway.list_clusters() == [], timeout=60, what="cluster stopped")
    finally:
        gateway.close()


@pytest.mark.parametrize(
    ("make_token", "status"),
    [
        (lambda hub: "not-a-hub-token", 401),
        # a real hub token of a real user, without access to the gateway service
        (lambda hub: hub.user_token("bob", scopes=["users:activity!user"]), 403),
    ],
    ids=["bad-token", "token-without-service-scope"],
)
def test_tokens_the_hub_does_not_vouch_for_are_refused(
    setup: Setup, make_token: Any, status: int
) -> None:
    with Gateway(setup.address, auth=JupyterHubAuth(api_token=make_token(setup.hub))) as gateway:
        with pytest.raises(aiohttp.ClientResponseError) as info:
            gateway.list_clusters()
    assert info.value.status == status


def test_explicit_token_and_url_still_work(setup: Setup) -> None:
    # the other-namespace recipe: the token given in the values, the hub by a two-part name
    setup.release.upgrade_install(
        JUPYTERHUB_YAML
        + "    jupyterhub:\n"
        + f"      apiToken: {setup.z2jh.gateway_token}\n"
        + f"      apiUrl: http://hub.{NAMESPACE}:8081/hub/api\n"
    )
    api_routed(setup.external_ip)
    (pod,) = api_pods(setup)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    ref = env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": API, "key": "jupyterhub-api-token"}
    assert "jupyterhub-api-token" in setup.get("secret", API)["data"]
    assert watch_started(setup, pod["metadata"]["name"])
    with Gateway(setup.address, auth=JupyterHubAuth(api_token=setup.hub.user_token("alice"))) as g:
        assert g.list_clusters() == []
