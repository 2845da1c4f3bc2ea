"""Traefik objects: dashboard IngressRoute, scheduler IngressRouteTCP, strip-prefix Middleware.

- ``<prefix>/clusters/<ns>.<name>/`` -> Service port 8787, first through the
  dashboard forward-auth (which must see the full path to know the cluster),
  then through this cluster's stripPrefix, so the dashboard sees ``/status``.
- TLS with SNI ``daskgateway-<ns>.<name>`` -> Service port 8786, passed through
  untouched: the client and scheduler authenticate each other end to end.
"""

from __future__ import annotations

from typing import Any

from .labels import cluster_labels, route_name, service_name, strip_prefix_name
from .ownership import object_meta
from .scheduler import COMM_PORT, DASHBOARD_PORT
from .spec import ClusterSpec

__all__ = [
    "TRAEFIK_API_VERSION",
    "build_ingressroute",
    "build_ingressroute_tcp",
    "build_strip_prefix_middleware",
    "dashboard_path",
    "sni_name",
]

TRAEFIK_API_VERSION = "traefik.io/v1alpha1"


def dashboard_path(spec: ClusterSpec) -> str:
    """Public path of the dashboard, with a trailing slash."""
    prefix = spec.route_prefix.rstrip("/")
    return f"{prefix}/clusters/{spec.public_name}/"


def sni_name(spec: ClusterSpec) -> str:
    """TLS server name the client sends for this cluster (upstream's scheme)."""
    return f"daskgateway-{spec.public_name}"


def _traefik(kind: str, spec: ClusterSpec, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": TRAEFIK_API_VERSION,
        "kind": kind,
        "metadata": object_meta(spec, name, cluster_labels(spec)),
        "spec": body,
    }


def build_strip_prefix_middleware(spec: ClusterSpec) -> dict[str, Any]:
    # Without the trailing slash, so ``.../clusters/<name>`` also maps to ``/``.
    prefix = dashboard_path(spec).rstrip("/")
    body = {"stripPrefix": {"prefixes": [prefix]}}
    return _traefik("Middleware", spec, strip_prefix_name(spec.name), body)


def build_ingressroute(spec: ClusterSpec) -> dict[str, Any]:
    auth: dict[str, str] = {"name": spec.dashboard_auth_middleware}
    if spec.dashboard_auth_middleware_namespace:
        auth["namespace"] = spec.dashboard_auth_middleware_namespace
    route = {
        "kind": "Rule",
        "match": f"PathPrefix(`{dashboard_path(spec)}`)",
        "middlewares": [auth, {"name": strip_prefix_name(spec.name)}],
        "services": [{"name": service_name(spec.name), "port": DASHBOARD_PORT}],
    }
    body = {"entryPoints": list(spec.web_entrypoints), "routes": [route]}
    return _traefik("IngressRoute", spec, route_name(spec.name), body)


def build_ingressroute_tcp(spec: ClusterSpec) -> dict[str, Any]:
    route = {
        "match": f"HostSNI(`{sni_name(spec)}`)",
        "services": [{"name": service_name(spec.name), "port": COMM_PORT}],
    }
    body = {
        "entryPoints": list(spec.tcp_entrypoints),
        "routes": [route],
        "tls": {"passthrough": True},
    }
    return _traefik("IngressRouteTCP", spec, route_name(spec.name), body)
