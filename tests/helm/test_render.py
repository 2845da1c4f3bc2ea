"""The chart renders, lints clean and validates for the defaults and the install guide's scenarios."""

from __future__ import annotations

import base64
import json

import jsonschema
import kubernetes_validate
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from traitlets.config import Config

from jhub_gateway.hub_service.chart_values import configure

from .chart import (
    FULLNAME,
    NAMESPACE,
    config_text,
    container,
    crd_schemas,
    env_of,
    lint,
    manifests,
    render,
)

API = ("Deployment", f"api-{FULLNAME}")
CONTROLLER = ("Deployment", f"controller-{FULLNAME}")
TRAEFIK = ("Deployment", f"traefik-{FULLNAME}")
TRAEFIK_SVC = ("Service", f"traefik-{FULLNAME}")

SCENARIOS = {
    "defaults": "",
    "custom image": """
gateway:
  backend:
    image:
      name: registry.example.org/team/dask-image
      tag: "2026.1"
""",
    "scheduler node affinity": """
gateway:
  backend:
    scheduler:
      extraPodConfig:
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
                - matchExpressions:
                  - key: cloud.google.com/gke-preemptible
                    operator: DoesNotExist
""",
    "extraConfig cluster options": """
gateway:
  extraConfig:
    # Note that the key name here doesn't matter.
    clusteroptions: |
        from dask_gateway_server.options import Options, Integer, Float, String

        def option_handler(options):
            return {
                "worker_cores": options.worker_cores,
                "worker_memory": "%fG" % options.worker_memory,
                "image": options.image,
            }

        c.Backend.cluster_options = Options(
            Integer("worker_cores", 2, min=1, max=4, label="Worker Cores"),
            Float("worker_memory", 4, min=1, max=8, label="Worker Memory (GiB)"),
            String("image", default="daskgateway/dask-gateway:latest", label="Image"),
            handler=option_handler,
        )
""",
    "jupyterhub same namespace": """
gateway:
  auth:
    type: jupyterhub
""",
    "jupyterhub explicit token and url": """
gateway:
  auth:
    type: jupyterhub
    jupyterhub:
      apiToken: "0123456789abcdef0123456789abcdef"
      apiUrl: "https://hub.example.org:443/hub/api"
""",
    "separate tcp port": """
traefik:
  service:
    ports:
      tcp:
        port: 8786
""",
    "prefix": """
gateway:
  prefix: /services/dask-gateway
""",
    "existing service accounts": """
rbac:
  controller:
    serviceAccountName: my-controller
  gateway:
    serviceAccountName: my-gateway
  traefik:
    serviceAccountName: my-traefik
""",
    "kerberos": """
gateway:
  auth:
    type: kerberos
    kerberos:
      keytab: aGVsbG8=
""",
    "custom auth": """
gateway:
  auth:
    type: custom
    custom:
      class: jhub_gateway.hub_service.auth.simple.SimpleAuthenticator
      config:
        password: s3cret
""",
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request):
    return request.param, render(SCENARIOS[request.param])


def test_every_manifest_validates(scenario) -> None:
    name, docs = scenario
    schemas = crd_schemas()
    version = kubernetes_validate.latest_version()
    for doc in manifests(docs):
        key = (doc["apiVersion"], doc["kind"])
        if key in schemas:
            jsonschema.validate(doc["spec"], schemas[key]["properties"]["spec"])
        else:
            kubernetes_validate.validate(doc, version, strict=True)


def test_lint_is_clean(scenario) -> None:
    name, _ = scenario
    from .chart import values

    report = lint(values(SCENARIOS[name]))
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 1] == []


def test_defaults_match_the_install_guide() -> None:
    docs = render()
    assert docs[("Service", f"api-{FULLNAME}")]["spec"]["ports"][0]["port"] == 8000
    svc = docs[TRAEFIK_SVC]["spec"]
    assert svc["type"] == "LoadBalancer"
    assert [(p["name"], p["port"]) for p in svc["ports"]] == [("web", 80)]
    api = container(docs, API)
    assert api["image"] == "ghcr.io/jhub-gateway/jhub-gateway:0.1.0"
    assert api["command"][0] == "jhub-gateway"
    assert container(docs, CONTROLLER)["command"][0] == "jhub-gateway-controller"
    traefik = container(docs, TRAEFIK)
    assert traefik["image"] == "traefik:v3.7.15"
    assert "command" not in traefik
    route = docs[("IngressRoute", f"api-{FULLNAME}")]["spec"]["routes"][0]
    # the forward-auth endpoint is for Traefik on the api Service, never public
    assert route["match"] == "PathPrefix(`/`) && !PathPrefix(`/api/v1/dashboard-auth`)"
    assert route["priority"] == 1  # below the controller's dashboard routes
    assert (
        "Namespace " + NAMESPACE in docs[("NOTES", "")]["text"]
        or NAMESPACE in docs[("NOTES", "")]["text"]
    )
    text = config_text(docs)
    assert "from jhub_gateway.hub_service.chart_values import configure" in text


def test_custom_image_reaches_the_backend_config() -> None:
    text = config_text(render(SCENARIOS["custom image"]))
    assert "registry.example.org/team/dask-image:2026.1" in text


def test_extra_config_map_is_appended_in_sorted_key_order() -> None:
    docs = render(
        {
            "gateway": {
                "extraConfig": {
                    "b-second": "c.ClusterConfig.idle_timeout = 2\n",
                    "a-first": "c.ClusterConfig.idle_timeout = 1\n",
                }
            }
        }
    )
    text = config_text(docs)
    assert text.index("idle_timeout = 1") < text.index("idle_timeout = 2")
    assert text.index("configure(c,") < text.index("idle_timeout = 1")


def test_extra_config_string_is_appended() -> None:
    text = config_text(render({"gateway": {"extraConfig": "c.ClusterConfig.idle_timeout = 7\n"}}))
    assert "c.ClusterConfig.idle_timeout = 7" in text


def test_jupyterhub_token_from_the_hub_secret_by_default() -> None:
    docs = render(SCENARIOS["jupyterhub same namespace"])
    env = env_of(container(docs, API))
    ref = env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hub", "key": "hub.services.dask-gateway.apiToken"}
    # z2jh's hub Service, by its DNS name in the same namespace
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://hub:8081/hub/api"
    labels = docs[API]["spec"]["template"]["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true"  # z2jh's hub NetworkPolicy
    notes = docs[("NOTES", "")]["text"]
    assert "kubectl get secret hub --namespace dask-gateway" in notes
    assert "access:services!service=dask-gateway" in notes


def _configured(user_values: str, environ: dict[str, str]) -> Config:
    """The traitlets config the api pod builds from the rendered file (as configure runs it)."""
    text = config_text(render(user_values))
    settings = json.loads(
        json.loads(text.split("configure(c, json.loads(", 1)[1].rsplit("))", 1)[0])
    )
    c = Config()
    configure(c, settings, environ)
    return c


def test_jupyterhub_url_and_service_name_reach_the_authenticator() -> None:
    c = _configured(SCENARIOS["jupyterhub same namespace"], {})
    assert c.GatewayApp.authenticator == "jupyterhub"
    assert c.JupyterHubAuthenticator.api_url == "http://hub:8081/hub/api"
    assert c.JupyterHubAuthenticator.service_name == "dask-gateway"
    # in the pod the URL comes from the environment the chart sets (the kubelet resolves it)
    c = _configured(SCENARIOS["jupyterhub same namespace"], {"JUPYTERHUB_API_URL": "http://x/a"})
    assert c.JupyterHubAuthenticator.api_url == "http://x/a"
    named = (
        SCENARIOS["jupyterhub same namespace"]
        + "    jupyterhub:\n      jupyterhubServiceName: dg\n"
    )
    assert _configured(named, {}).JupyterHubAuthenticator.service_name == "dg"


def test_jupyterhub_explicit_token_goes_to_our_secret_not_the_config() -> None:
    docs = render(SCENARIOS["jupyterhub explicit token and url"])
    ref = env_of(container(docs, API))["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"api-{FULLNAME}", "key": "jupyterhub-api-token"}
    assert "jupyterhub-api-token" in docs[("Secret", f"api-{FULLNAME}")]["data"]
    text = config_text(docs)
    assert "0123456789abcdef" not in text
    env = env_of(container(docs, API))
    assert env["JUPYTERHUB_API_URL"]["value"] == "https://hub.example.org:443/hub/api"


def test_separate_tcp_port_adds_an_entrypoint_and_service_port() -> None:
    docs = render(SCENARIOS["separate tcp port"])
    ports = {p["name"]: p["port"] for p in docs[TRAEFIK_SVC]["spec"]["ports"]}
    assert ports == {"web": 80, "tcp": 8786}
    assert "--entrypoints.tcp.address=$(POD_IP):8786" in container(docs, TRAEFIK)["args"]
    controller = docs[("ConfigMap", f"controller-{FULLNAME}")]["data"]
    assert 'proxy_tcp_entrypoint = "tcp"' in controller["jhub_gateway_controller_config.py"]
    shared = render()[("ConfigMap", f"controller-{FULLNAME}")]["data"]
    assert 'proxy_tcp_entrypoint = "web"' in shared["jhub_gateway_controller_config.py"]


def test_prefix_reaches_route_probes_and_controller() -> None:
    docs = render(SCENARIOS["prefix"])
    route = docs[("IngressRoute", f"api-{FULLNAME}")]["spec"]["routes"][0]
    assert route["match"] == (
        "(Path(`/services/dask-gateway`) || PathPrefix(`/services/dask-gateway/`))"
        " && !PathPrefix(`/services/dask-gateway/api/v1/dashboard-auth`)"
    )
    assert (
        container(docs, API)["readinessProbe"]["httpGet"]["path"]
        == "/services/dask-gateway/api/health"
    )
    controller = docs[("ConfigMap", f"controller-{FULLNAME}")]["data"][
        "jhub_gateway_controller_config.py"
    ]
    assert f"api-{FULLNAME}.{NAMESPACE}:8000/services/dask-gateway/api" in controller


def test_existing_service_accounts_are_used_and_not_created() -> None:
    docs = render(SCENARIOS["existing service accounts"])
    for deployment, sa in (
        (API, "my-gateway"),
        (CONTROLLER, "my-controller"),
        (TRAEFIK, "my-traefik"),
    ):
        assert docs[deployment]["spec"]["template"]["spec"]["serviceAccountName"] == sa
    kinds = {k[0] for k in docs}
    assert "ServiceAccount" not in kinds and "Role" not in kinds


def test_rbac_disabled_creates_no_roles_and_uses_default_accounts() -> None:
    docs = render({"rbac": {"enabled": False}})
    kinds = {k[0] for k in docs}
    assert not kinds & {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    }
    assert docs[API]["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_controller_disabled_renders_no_controller() -> None:
    docs = render({"controller": {"enabled": False}})
    assert CONTROLLER not in docs
    assert "controller.enabled is false" in docs[("NOTES", "")]["text"]


def test_roles_are_namespaced_and_narrow() -> None:
    docs = render()
    controller_role = docs[("Role", f"{FULLNAME}-controller")]
    assert controller_role["metadata"]["namespace"] == NAMESPACE
    crd_rule = docs[("ClusterRole", f"{FULLNAME}-controller-{NAMESPACE}-crds")]["rules"][0]
    assert crd_rule["verbs"] == ["get", "patch"]
    assert "daskclusters.jhubgateway.dask.org" in crd_rule["resourceNames"]
    assert len(crd_rule["resourceNames"]) == 11
    traefik_rules = docs[("Role", f"{FULLNAME}-traefik")]["rules"]
    assert all(set(r["verbs"]) == {"get", "list", "watch"} for r in traefik_rules)


def test_backend_namespace_gets_its_own_roles() -> None:
    docs = render({"gateway": {"backend": {"namespace": "dask-clusters"}}})
    namespaces = {d["metadata"].get("namespace") for (k, _), d in docs.items() if k == "Role"}
    assert namespaces == {NAMESPACE, "dask-clusters"}
    args = container(docs, TRAEFIK)["args"]
    assert f"--providers.kubernetescrd.namespaces={NAMESPACE},dask-clusters" in args


def test_kerberos_keytab_is_mounted_from_a_secret() -> None:
    docs = render(SCENARIOS["kerberos"])
    assert docs[("Secret", f"api-{FULLNAME}")]["data"]["http.keytab"] == "aGVsbG8="
    pod = docs[API]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "keytab")
    assert volume["secret"]["secretName"] == f"api-{FULLNAME}"
    existing = render(
        {"gateway": {"auth": {"type": "kerberos", "kerberos": {"keytabFromSecretName": "krb"}}}}
    )
    volume = next(
        v for v in existing[API]["spec"]["template"]["spec"]["volumes"] if v["name"] == "keytab"
    )
    assert volume["secret"]["secretName"] == "krb"


def test_simple_password_is_in_a_secret_env_not_the_config() -> None:
    docs = render({"gateway": {"auth": {"simple": {"password": "hunter2"}}}})
    assert "hunter2" not in config_text(docs)
    env = env_of(container(docs, API))
    assert (
        env["JHUB_GATEWAY_SIMPLE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "simple-password"
    )


def test_config_change_rolls_the_api_pods() -> None:
    a = render()[API]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    b = render({"gateway": {"loglevel": "DEBUG"}})[API]["spec"]["template"]["metadata"][
        "annotations"
    ]["checksum/config"]
    assert a != b


def test_pod_settings_are_passed_through() -> None:
    docs = render(
        """
gateway:
  replicas: 2
  annotations: {team: data}
  env: [{name: MYENV, value: "my value"}]
  imagePullSecrets: [name: regcred]
  nodeSelector: {pool: core}
  tolerations: [{key: dedicated, operator: Exists}]
  resources: {requests: {cpu: 100m}}
traefik:
  additionalArguments: ["--accesslog=true"]
  dashboard: true
"""
    )
    api = docs[API]["spec"]
    assert api["replicas"] == 2
    pod = api["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"pool": "core"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert api["template"]["metadata"]["annotations"]["team"] == "data"
    assert env_of(pod["containers"][0])["MYENV"]["value"] == "my value"
    args = container(docs, TRAEFIK)["args"]
    assert "--accesslog=true" in args and "--api.dashboard=true" in args
    assert "traefik" in {p["name"] for p in docs[TRAEFIK_SVC]["spec"]["ports"]}


def test_traefik_has_a_default_certificate_of_its_own() -> None:
    # without one Traefik mints an RSA key on every routing change; a TLSStore object
    # would be shared with every Traefik watching the namespace, so its file provider
    # reads the store from a Secret only this release's Traefik mounts
    docs = render()
    assert not [k for k in docs if k[0] == "TLSStore"]
    secret_name = f"{TRAEFIK[1]}-default-tls"
    data = docs[("Secret", secret_name)]["data"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    dynamic = json.loads(base64.b64decode(data["default-tls.yml"]))
    default = dynamic["tls"]["stores"]["default"]["defaultCertificate"]
    assert default == {
        "certFile": base64.b64decode(data["tls.crt"]).decode(),
        "keyFile": base64.b64decode(data["tls.key"]).decode(),
    }
    pod = docs[TRAEFIK]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "default-tls"]
    assert volume["secret"] == {
        "secretName": secret_name,
        "items": [{"key": "default-tls.yml", "path": "default-tls.yml"}],
    }
    (mount,) = container(docs, TRAEFIK)["volumeMounts"]
    assert "--providers.file.directory=" + mount["mountPath"] in container(docs, TRAEFIK)["args"]
    # each install gets its own pair
    again = render()[("Secret", secret_name)]["data"]["tls.key"]
    assert again != data["tls.key"]


def test_traefik_throttles_route_changes_only_in_its_crd_provider() -> None:
    # Traefik's global providers throttle (2 s by default) would hold a new cluster's
    # route that long after any other change in the watched namespaces
    args = container(render(), TRAEFIK)["args"]
    assert "--providers.providersthrottleduration=0s" in args
    assert "--providers.kubernetescrd.throttleduration=0.2s" in args
