"""End-to-end helpers for the controller: CRDs, Traefik, a heartbeat sink, controller processes.

The heartbeat sink stands in for the api service's two duties towards a
scheduler on Kubernetes: it answers heartbeats and, as the service does,
writes the scheduler's requested worker count into ``spec.replicas``. It
also answers the dashboard forward-auth (allowing requests that carry the
test's token), so the whole Traefik path runs without the service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from jhub_gateway import crd
from jhub_gateway.dashboard_credential import HEADER, dashboard_credential
from jhub_gateway.kube.client import DASKCLUSTERS, PODS, SECRETS, KubeClient, KubeError
from tests.kube.accounts import grant, issue_token, traefik_access
from tests.polling import until

ROOT = Path(__file__).parents[2]
TRAEFIK = Path(sys.executable).parent / "traefik"
TRAEFIK_CRDS = ROOT / "helm" / "jhub-gateway" / "crds" / "traefik.yaml"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
INSTANCE = "gw"
AUTH_TOKEN = "dashboard-secret"
TRAEFIK_SA = "traefik"
log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    """``until`` ``check`` is truthy; API and connection errors count as not yet."""

    async def attempt() -> Any:
        try:
            return await check()
        except (KubeError, OSError, aiohttp.ClientError) as exc:
            log.debug("waiting for %s: %r", what, exc)
            return None

    return await until(attempt, timeout=timeout, interval=0.2, what=what)


async def install_crds(client: KubeClient) -> None:
    from jhub_gateway.kube.client import Resource

    crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
    for doc in [crd.crd_manifest(), *yaml.safe_load_all(TRAEFIK_CRDS.read_text())]:
        await client.create(crds, doc)

    async def served() -> bool:
        await client.list(DASKCLUSTERS, "default")
        return True

    await wait_for(served, "the DaskCluster CRD to be served")


async def ensure_namespace(client: KubeClient, name: str) -> None:
    from jhub_gateway.kube.client import NAMESPACES, AlreadyExists

    try:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}})  # fmt: skip
    except AlreadyExists:
        pass


def daskcluster(name: str, *, replicas: int = 0, config: dict[str, Any] | None = None,
                username: str = "alice") -> dict[str, Any]:  # fmt: skip
    body = crd.cluster_object(name, "", {"username": username, "replicas": replicas,
                                         "config": config or {}})  # fmt: skip
    del body["metadata"]["namespace"]
    body["metadata"]["labels"] = crd.instance_labels(INSTANCE)
    return body


class HeartbeatSink:
    """A stand-in for the api service's scheduler-facing and forward-auth routes."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.heartbeats: list[tuple[str, dict[str, Any]]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/clusters/{name}/heartbeat", self._heartbeat)
        app.router.add_delete("/api/v1/clusters/{name}", self._stop)
        app.router.add_get("/api/v1/dashboard-auth", self._auth)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def _heartbeat(self, request: web.Request) -> web.Response:
        public = request.match_info["name"]
        msg = await request.json()
        self.heartbeats.append((public, msg))
        ns, name = crd.parse_public_name(public)
        count = msg.get("count")
        if isinstance(count, int):
            try:
                await self.client.patch(DASKCLUSTERS, name, {"spec": {"replicas": count}}, ns)
            except KubeError as exc:
                return web.json_response({"error": "kube", "message": str(exc)}, status=503)
        return web.json_response({})

    async def _stop(self, request: web.Request) -> web.Response:
        ns, name = crd.parse_public_name(request.match_info["name"])
        await self.client.patch(DASKCLUSTERS, name, {"spec": {"active": False}}, ns)
        return web.json_response({})

    async def _auth(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"token {AUTH_TOKEN}":
            return web.json_response({}, status=401)
        # As the api service does: a 200 carries the cluster's dashboard credential,
        # which Traefik copies onto the proxied request and the scheduler requires.
        path = request.headers.get("X-Forwarded-Uri", "")
        public = path.split("/")[2] if path.startswith("/clusters/") else ""
        try:
            ns, name = crd.parse_public_name(public)
            secret = await self.client.get(SECRETS, f"dask-credentials-{name}", ns)
        except (ValueError, KubeError):
            return web.json_response({}, status=404)
        token = base64.b64decode(secret["data"]["api-token"]).decode()
        return web.json_response({}, headers={HEADER: dashboard_credential(token)})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class ControllerProcess:
    """``jhub-gateway-controller`` as a real process with its own config file."""

    def __init__(self, workdir: Path, kubeconfig: Path, namespace: str, api_url: str,
                 name: str = "controller", log_level: str = "DEBUG",
                 env: dict[str, str] | None = None, **traits: Any) -> None:  # fmt: skip
        self.workdir = workdir
        self.log_level = log_level
        self.env = env or {}
        self.kubeconfig = kubeconfig
        self.name = name
        self.health_port = free_port()
        self.log_path = workdir / f"{name}.log"
        settings: dict[str, Any] = {
            "gateway_instance": INSTANCE,
            "api_url": api_url,
            "namespaces": [namespace],
            "address": f"127.0.0.1:{self.health_port}",
            "lease_namespace": namespace,
            "lease_duration": 4.0,
            "renew_deadline": 3.0,
            "retry_period": 0.5,
            "scheduler_start_timeout": 30.0,
            "worker_start_timeout": 30.0,
            "parallelism": 4,
            **traits,
        }
        self.config_path = workdir / f"{name}_config.py"
        self.config_path.write_text(
            "".join(f"c.KubeController.{k} = {v!r}\n" for k, v in settings.items())
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.profile: Path | None = None  # cProfile output, written when it stops on SIGTERM

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *(["-m", "cProfile", "-o", str(self.profile)] if self.profile else []),
                "-m", "jhub_gateway.controller.app",
                "-f", str(self.config_path), "--kubeconfig", str(self.kubeconfig),
                "--log-level", self.log_level,
                stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
            )  # fmt: skip

    async def probe(self, path: str) -> dict[str, Any] | None:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{self.health_port}{path}") as resp:
                    body = json.loads(await resp.text())
                    return body if resp.status == 200 else None
        except (aiohttp.ClientError, OSError, ValueError):
            return None

    async def wait_ready(self) -> None:
        await wait_for(lambda: self.probe("/readyz"), f"{self.name} readiness")

    async def wait_leading(self) -> None:
        async def leading() -> bool:
            body = await self.probe("/readyz")
            return bool(body and body.get("leader"))

        await wait_for(leading, f"{self.name} to lead")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s") from None
        return int(self.proc.returncode or 0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Traefik:
    """Unmodified Traefik as ServiceAccount ``traefik`` with the chart's read-only Roles."""

    def __init__(self, workdir: Path, api_host: str, namespace: str) -> None:
        self.web, self.tcp, self.ping = free_port(), free_port(), free_port()
        self.workdir = workdir
        self.api_host = api_host
        self.namespace = namespace
        self.proc: asyncio.subprocess.Process | None = None
        self.profile: Path | None = None  # cProfile output, written when it stops on SIGTERM

    async def start(self) -> None:
        await grant(self.api_host, traefik_access(TRAEFIK_SA, self.namespace, [self.namespace]))
        token = await issue_token(self.api_host, self.namespace, TRAEFIK_SA)
        with (self.workdir / "traefik.log").open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(TRAEFIK),
                f"--entryPoints.web.address=127.0.0.1:{self.web}",
                f"--entryPoints.tcp.address=127.0.0.1:{self.tcp}",
                f"--entryPoints.ping.address=127.0.0.1:{self.ping}",
                "--ping.entryPoint=ping",
                "--providers.kubernetescrd",
                f"--providers.kubernetescrd.endpoint={self.api_host}",
                f"--providers.kubernetescrd.token={token}",
                f"--providers.kubernetescrd.namespaces={self.namespace}",
                "--providers.providersThrottleDuration=200ms",
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

        async def pinged() -> bool:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{self.ping}/ping") as resp:
                    return resp.status == 200

        await wait_for(pinged, "traefik /ping")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def secret_files(client: KubeClient, namespace: str, name: str, into: Path
                       ) -> dict[str, str]:  # fmt: skip
    """The cluster's Secret decoded: ``{key: text}``; PEMs also written under ``into``."""
    secret = await client.get(SECRETS, f"dask-credentials-{name}", namespace)
    out = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    def write() -> None:
        into.mkdir(parents=True, exist_ok=True)
        for key in ("tls.crt", "tls.key"):
            (into / key).write_text(out[key])

    await asyncio.to_thread(write)
    return out


async def cluster_pods(client: KubeClient, namespace: str, name: str, component: str = ""
                       ) -> list[dict[str, Any]]:  # fmt: skip
    selector = f"gateway.dask.org/cluster={name}"
    if component:
        selector += f",app.kubernetes.io/component={component}"
    pods, _ = await client.list(PODS, namespace, label_selector=selector)
    return pods
