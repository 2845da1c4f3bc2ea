"""What zero-to-jupyterhub puts in a namespace, as far as the gateway chart sees it.

A ``hub`` Secret holding each registered service's token under
``hub.services.<name>.apiToken`` (z2jh's key names), a ``hub`` ConfigMap with
``jupyterhub_config.py``, a ``hub`` Deployment running a real JupyterHub (with
configurable-http-proxy beside it; z2jh runs the proxy in its own pod) and the
``hub`` Service on 8081. The pods run as processes on the emulator's kubelet,
so the hub binds ``$POD_IP`` like every pod there.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

GATEWAY_SERVICE = "dask-gateway"
ADMIN_SERVICE = "test-admin"  # the test's own hub service, admin role
HUB_PORT = 8081

# Read by JupyterHub inside the hub pod (environment from the pod spec).
HUB_CONFIG = f"""\
import os

c = get_config()  # noqa: F821
ip = os.environ["POD_IP"]
c.JupyterHub.ip = ip
c.JupyterHub.port = 8000
c.JupyterHub.hub_ip = ip
c.JupyterHub.hub_port = {HUB_PORT}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
# the proxy is its own container (z2jh: its own pod); CONFIGPROXY_AUTH_TOKEN is shared
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{{ip}}:8001"
# z2jh: hub.services.<name>.apiToken from the hub Secret
c.JupyterHub.services = [
    {{"name": "{GATEWAY_SERVICE}", "api_token": os.environ["GATEWAY_SERVICE_TOKEN"],
     "display": False}},
    {{"name": "{ADMIN_SERVICE}", "api_token": os.environ["ADMIN_SERVICE_TOKEN"]}},
]
c.JupyterHub.load_roles = [
    # z2jh hub.loadRoles: every user may use the gateway
    {{"name": "user", "scopes": ["self", "access:services!service={GATEWAY_SERVICE}"]}},
    {{"name": "{GATEWAY_SERVICE}", "services": ["{GATEWAY_SERVICE}"],
     "scopes": ["list:users", "read:users:groups", "read:servers"]}},
    {{"name": "admin", "services": ["{ADMIN_SERVICE}"]}},
]
"""


def _secret_ref(key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": "hub", "key": key}}


def _env(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


@dataclass
class Z2jh:
    """The hub's objects with fresh tokens; ``manifests()`` for kubectl apply."""

    gateway_token: str = field(default_factory=lambda: secrets.token_hex(32))
    admin_token: str = field(default_factory=lambda: secrets.token_hex(32))
    proxy_token: str = field(default_factory=lambda: secrets.token_hex(32))

    def manifests(self) -> list[dict[str, Any]]:
        labels = {"app": "jupyterhub", "component": "hub"}
        data = {
            f"hub.services.{GATEWAY_SERVICE}.apiToken": self.gateway_token,
            f"hub.services.{ADMIN_SERVICE}.apiToken": self.admin_token,
            "hub.config.ConfigurableHTTPProxy.auth_token": self.proxy_token,
        }
        pod_ip = _env("POD_IP", valueFrom={"fieldRef": {"fieldPath": "status.podIP"}})
        proxy_auth = _env(
            "CONFIGPROXY_AUTH_TOKEN",
            valueFrom=_secret_ref("hub.config.ConfigurableHTTPProxy.auth_token"),
        )
        hub = {
            "name": "hub",
            "image": "quay.io/jupyterhub/k8s-hub:4.2.0",
            "command": ["jupyterhub", "-f", "/usr/local/etc/jupyterhub/jupyterhub_config.py"],
            "workingDir": "/srv/jupyterhub",
            "env": [
                pod_ip,
                proxy_auth,
                _env(
                    "GATEWAY_SERVICE_TOKEN",
                    valueFrom=_secret_ref(f"hub.services.{GATEWAY_SERVICE}.apiToken"),
                ),
                _env(
                    "ADMIN_SERVICE_TOKEN",
                    valueFrom=_secret_ref(f"hub.services.{ADMIN_SERVICE}.apiToken"),
                ),
            ],
            "ports": [{"name": "http", "containerPort": HUB_PORT}],
            "readinessProbe": {
                "httpGet": {"path": "/hub/health", "port": "http"},
                "periodSeconds": 1,
            },
            "volumeMounts": [
                {"name": "config", "mountPath": "/usr/local/etc/jupyterhub"},
                {"name": "data", "mountPath": "/srv/jupyterhub"},
            ],
        }
        proxy = {
            "name": "proxy",
            "image": "quay.io/jupyterhub/configurable-http-proxy:4.6.3",
            "command": [
                "configurable-http-proxy",
                "--ip=$(POD_IP)",
                "--port=8000",
                "--api-ip=$(POD_IP)",
                "--api-port=8001",
                f"--default-target=http://$(POD_IP):{HUB_PORT}",
            ],
            "env": [pod_ip, proxy_auth],
        }
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "hub", "labels": labels},
                "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "hub", "labels": labels},
                "data": {"jupyterhub_config.py": HUB_CONFIG},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "hub", "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [hub, proxy],
                            "volumes": [
                                {"name": "config", "configMap": {"name": "hub"}},
                                {"name": "data", "emptyDir": {}},
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "hub", "labels": labels},
                "spec": {
                    "selector": labels,
                    "ports": [{"name": "hub", "port": HUB_PORT, "targetPort": "http"}],
                },
            },
        ]


class HubApi:
    """The hub's REST API from the test process (the Service's loopback ClusterIP)."""

    def __init__(self, cluster_ip: str, admin_token: str) -> None:
        self.url = f"http://{cluster_ip}:{HUB_PORT}/hub/api"
        self.admin_token = admin_token

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token or self.admin_token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            return 0, None  # not reachable yet

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {data}"
        return data

    def user_token(self, name: str, scopes: list[str] | None = None) -> str:
        """A new API token of hub user ``name`` (created if missing)."""
        if self.call("GET", f"/users/{name}")[0] == 404:
            self.ok("POST", f"/users/{name}", {})
        body: dict[str, Any] = {"note": "gateway test"}
        if scopes is not None:
            body["scopes"] = scopes
        return self.ok("POST", f"/users/{name}/tokens", body)["token"]
