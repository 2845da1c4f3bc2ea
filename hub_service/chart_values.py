"""Turn the Helm chart's values into service configuration.

The chart's generated config file is two lines that hand the (JSON) values to
:func:`configure`, followed by the operator's ``gateway.extraConfig``, so the
mapping from values to traits lives here, in Python, where it is unit-tested,
instead of in template logic. Secrets never pass through here: the chart puts
them in environment variables from Secrets, read at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["configure", "hub_api_url", "log_level"]

KEYTAB_PATH = "/etc/jhub-gateway-kerberos/http.keytab"
DATA_DIR = "/var/lib/jhub-gateway"
# zero-to-jupyterhub's hub Service, as seen from a pod in the same namespace
DEFAULT_HUB_API_URL = "http://hub:8081/hub/api"
SERVICE_NAME = "dask-gateway"

_LEVELS = {"WARN": "WARNING", "FATAL": "CRITICAL", "PANIC": "CRITICAL", "TRACE": "DEBUG"}


def log_level(value: Any) -> str:
    """``INFO``/``warn``/... as a Python logging level name (Traefik's spellings too)."""
    name = str(value or "INFO").upper()
    return _LEVELS.get(name, name)


def _get(values: Mapping[str, Any] | None, *path: str) -> Any:
    """``values[a][b]...``, or None where a key is missing or null (Helm deletes nulls)."""
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def hub_api_url(auth: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The JupyterHub API the gateway checks tokens with.

    The chart puts ``gateway.auth.jupyterhub.apiUrl``, or zero-to-jupyterhub's
    ``hub`` Service in the same namespace, into ``JUPYTERHUB_API_URL`` (a Service
    name in the pod's environment, so cluster DNS resolves it); the values are the
    fallback for a config file checked outside the pod.
    """
    return (
        environ.get("JUPYTERHUB_API_URL")
        or _get(auth, "jupyterhub", "apiUrl")
        or DEFAULT_HUB_API_URL
    )


def _resources(c: Any, backend: Mapping[str, Any]) -> None:
    for role in ("scheduler", "worker"):
        for resource in ("cores", "memory"):
            for kind, suffix in (("request", ""), ("limit", "_limit")):
                value = _get(backend, role, resource, kind)
                if value is not None and value != "":
                    c.KubeClusterConfig[f"{role}_{resource}{suffix}"] = value
        for key, trait in (
            ("extraPodConfig", "extra_pod_config"),
            ("extraContainerConfig", "extra_container_config"),
        ):
            value = _get(backend, role, key)
            if value:
                c.KubeClusterConfig[f"{role}_{trait}"] = dict(value)
    threads = _get(backend, "worker", "threads")
    if threads is not None:
        c.KubeClusterConfig.worker_threads = int(threads)


def _backend(c: Any, settings: Mapping[str, Any], gateway: Mapping[str, Any]) -> None:
    backend = _get(gateway, "backend") or {}
    c.GatewayApp.backend = "kubernetes"
    # the controller of this release selects DaskClusters by this instance name
    c.KubeBackend.instance = settings["fullname"]
    c.KubeBackend.namespace = settings["namespace"]
    c.KubeClusterConfig.image = settings["backendImage"]
    if _get(backend, "image", "pullPolicy"):
        c.KubeClusterConfig.image_pull_policy = backend["image"]["pullPolicy"]
    secrets = _get(backend, "imagePullSecrets") or []
    if secrets:
        c.KubeClusterConfig.image_pull_secrets = [
            {"name": s} if isinstance(s, str) else dict(s) for s in secrets
        ]
    c.KubeClusterConfig.namespace = _get(backend, "namespace") or settings["namespace"]
    environment = _get(backend, "environment") or {}
    if environment:
        c.KubeClusterConfig.environment = {
            k: str(v) for k, v in environment.items() if v is not None
        }
    _resources(c, backend)


def _auth(c: Any, auth: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    kind = auth.get("type") or "simple"
    if kind == "simple":
        c.GatewayApp.authenticator = "simple"
        password = environ.get("JHUB_GATEWAY_SIMPLE_PASSWORD")
        if password:
            c.SimpleAuthenticator.password = password
    elif kind == "kerberos":
        c.GatewayApp.authenticator = "kerberos"
        # the Deployment names the mounted keytab in the environment
        c.KerberosAuthenticator.keytab = environ.get("JHUB_GATEWAY_KERBEROS_KEYTAB") or KEYTAB_PATH
        service = _get(auth, "kerberos", "serviceName")
        if service:
            c.KerberosAuthenticator.service_name = service
    elif kind == "jupyterhub":
        c.GatewayApp.authenticator = "jupyterhub"
        c.JupyterHubAuthenticator.api_url = hub_api_url(auth, environ)
        # the token comes from JUPYTERHUB_API_TOKEN (a Secret); the hub knows us by this
        # name, and tokens need access to it (upstream checks only when the name is set)
        name = _get(auth, "jupyterhub", "jupyterhubServiceName") or SERVICE_NAME
        c.JupyterHubAuthenticator.service_name = name
    elif kind == "custom":
        cls = _get(auth, "custom", "class")
        if not cls:
            raise ValueError("gateway.auth.type is custom but gateway.auth.custom.class is unset")
        c.GatewayApp.authenticator = cls
        section = cls.rsplit(".", 1)[-1]
        for key, value in (_get(auth, "custom", "config") or {}).items():
            c[section][key] = value
    else:
        raise ValueError(
            f"gateway.auth.type must be simple, kerberos, jupyterhub or custom, not {kind!r}"
        )


def configure(
    c: Any, settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> None:
    """Apply the chart's values (``settings`` as the chart renders them) to config ``c``."""
    env = os.environ if environ is None else environ
    gateway = settings.get("gateway") or {}
    c.GatewayApp.api_listen = "0.0.0.0:8000"
    c.GatewayApp.prefix = gateway.get("prefix") or "/"
    web_port = settings.get("webPort") or 80
    c.GatewayApp.address = f"{settings['traefikService']}.{settings['namespace']}:{web_port}"
    c.GatewayApp.data_dir = DATA_DIR
    c.Application.log_level = log_level(gateway.get("loglevel"))
    _backend(c, settings, gateway)
    _auth(c, gateway.get("auth") or {}, env)
    # scrapers that go by pod annotations send no token: the chart says so next to the switch
    c.ServiceMetrics.public = bool(settings.get("metricsPublic"))
