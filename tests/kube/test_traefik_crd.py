"""Unmodified Traefik routing from our CRDs, through the emulator, to kubelet pods."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import sys
from pathlib import Path

import aiohttp
import kubernetes_validate
import pytest
import pytest_asyncio
import trustme
import yaml

from tests.kube.apiserver.server import TOKEN
from tests.kube.kubelet.fixtures import cluster  # noqa: F401
from tests.kube.kubelet.testing import Kube, pod, ready, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "traefik-crd"
TRAEFIK = Path(sys.executable).parent / "traefik"
CRDS = Path(__file__).parents[2] / "helm" / "jhub-gateway" / "crds" / "traefik.yaml"
TRAEFIK_API = "apis/traefik.io/v1alpha1"
KINDS = (
    "ingressroutes ingressroutetcps ingressrouteudps middlewares middlewaretcps tlsoptions "
    "tlsstores traefikservices serverstransports serverstransporttcps"
).split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube(cluster):  # noqa: F811
    _, api, workdir = cluster
    k = Kube(api, workdir, NS)
    await k.ensure_namespace()
    for crd in yaml.safe_load_all(CRDS.read_text()):
        await api.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd
        )

    async def served() -> bool:
        for plural in KINDS:
            await api.request("GET", f"/{TRAEFIK_API}/{plural}")
        return True

    await wait_for(served, what="Traefik CRDs served")
    return k


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traefik(cluster, kube, tmp_path_factory):  # noqa: F811
    _, api, _ = cluster
    web, tcp, ping = free_port(), free_port(), free_port()
    logfile = tmp_path_factory.mktemp("traefik") / "traefik.log"
    with logfile.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(TRAEFIK),
            f"--entryPoints.web.address=127.0.0.1:{web}",
            f"--entryPoints.tcp.address=127.0.0.1:{tcp}",
            f"--entryPoints.ping.address=127.0.0.1:{ping}",
            "--ping.entryPoint=ping",
            "--providers.kubernetescrd",
            f"--providers.kubernetescrd.endpoint={api.host}",
            "--providers.kubernetescrd.token=" + TOKEN,
            "--providers.kubernetescrd.namespaces=" + NS,
            "--providers.providersThrottleDuration=500ms",
            "--log.level=DEBUG",
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:

        async def pinged() -> bool:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{ping}/ping") as resp:
                    return resp.status == 200

        await wait_for(pinged, what="traefik /ping")
        yield {"web": web, "tcp": tcp, "log": logfile}
    finally:
        proc.kill()
        await proc.wait()


async def test_crd_manifests_cover_the_ten_kinds_and_validate() -> None:
    docs = list(yaml.safe_load_all(CRDS.read_text()))
    for crd in docs:
        kubernetes_validate.validate(crd, "1.30", strict=True)
    assert sorted(d["spec"]["names"]["plural"] for d in docs) == sorted(KINDS)
    assert {d["spec"]["group"] for d in docs} == {"traefik.io"}
    assert all(d["spec"]["versions"][0]["name"] == "v1alpha1" for d in docs)
    by_kind = {d["spec"]["names"]["kind"]: d for d in docs}
    mw = by_kind["Middleware"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert {"stripPrefix", "stripPrefixRegex", "forwardAuth", "headers"} <= set(
        mw["properties"]["spec"]["properties"]
    )


def service(name: str, port: int, target: int | str) -> dict:
    spec = {
        "selector": {"app": name},
        "ports": [{"name": "main", "port": port, "targetPort": target}],
    }
    return {"metadata": {"name": name}, "spec": spec}


async def test_ingressroute_with_strip_prefix_routes_http_to_pod(kube: Kube, traefik: dict) -> None:
    cmd = ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
    probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    await kube.create("pods", pod("hello", cmd, container={"readinessProbe": probe}))
    await kube.create("services", service("hello", 80, 8080))
    await kube.create(
        "middlewares",
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "strip-hello"},
            "spec": {"stripPrefix": {"prefixes": ["/hello"]}},
        },
        TRAEFIK_API,
    )
    route = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "hello"},
        "spec": {
            "entryPoints": ["web"],
            "routes": [
                {
                    "kind": "Rule",
                    "match": "PathPrefix(`/hello`)",
                    "middlewares": [{"name": "strip-hello"}],
                    "services": [{"name": "hello", "port": 80}],
                }
            ],
        },
    }
    await kube.create("ingressroutes", route, TRAEFIK_API)
    await kube.wait_pod("hello", ready, "Ready")

    async def routed() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{traefik['web']}/hello/") as resp:
                text = await resp.text()
                return text if resp.status == 200 else ""

    body = await wait_for(routed, what="IngressRoute to the pod")
    assert "Directory listing for /" in body  # the prefix was stripped on the way


TLS_SERVER = """
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.create_server((sys.argv[3], 8786))
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello over tls\\n")
    except (OSError, ssl.SSLError):
        pass  # probes connect without a handshake
"""


async def test_ingressroutetcp_passthrough_routes_tls_by_sni(kube: Kube, traefik: dict) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("daskgateway-demo")
    secret = {
        "metadata": {"name": "demo-tls"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": _b64(cert.cert_chain_pems[0].bytes()),
            "tls.key": _b64(cert.private_key_pem.bytes()),
        },
    }
    await kube.create("secrets", secret)
    cmd = ["python", "-c", TLS_SERVER, "/tls/tls.crt", "/tls/tls.key", "$(POD_IP)"]
    body = pod(
        "tlsdemo",
        cmd,
        container={
            "readinessProbe": {"tcpSocket": {"port": 8786}, "periodSeconds": 1},
            "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True}],
        },
        volumes=[{"name": "tls", "secret": {"secretName": "demo-tls"}}],
    )
    await kube.create("pods", body)
    await kube.create("services", service("tlsdemo", 8786, 8786))
    route = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRouteTCP",
        "metadata": {"name": "tlsdemo"},
        "spec": {
            "entryPoints": ["tcp"],
            "routes": [
                {
                    "match": "HostSNI(`daskgateway-demo`)",
                    "services": [{"name": "tlsdemo", "port": 8786}],
                }
            ],
            "tls": {"passthrough": True},
        },
    }
    await kube.create("ingressroutetcps", route, TRAEFIK_API)
    await kube.wait_pod("tlsdemo", ready, "Ready")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def greeting() -> bytes:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", traefik["tcp"], ssl=client_ctx, server_hostname="daskgateway-demo"
            ),
            5,
        )
        try:
            return await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()

    # The pod's own certificate reached the client: Traefik passed TLS through.
    assert await wait_for(greeting, what="TLS through IngressRouteTCP") == b"hello over tls\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
