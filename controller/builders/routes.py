"""Traefik objects: dashboard IngressRoute, scheduler IngressRouteTCP, shared Middlewares.

- ``<prefix>/clusters/<ns>.<name>/`` -> Service port 8787, first through the
  dashboard forward-auth (which must see the full path to know the cluster),
  then through the strip-prefix, so the dashboard sees ``/status``.
- TLS with SNI ``daskgateway-<ns>.<name>`` -> Service port 8786, passed through
  untouched: the client and scheduler authenticate each other end to end.

The two Middlewares are the same for every cluster of a namespace (the strip
is a regex over the cluster segment), so there is one of each per namespace
and instance instead of two more objects to write per cluster. They belong to
the instance, not to a cluster: no ownerReference, the instance labels only.
"""

from __future__ import annotations

from typing import Any

from jhub_gateway.dashboard_credential import drop_credentials_spec, forward_auth_spec

from .labels import (
    cluster_labels,
    instance_selector,
    route_name,
    service_name,
    shared_auth_name,
    shared_drop_credentials_name,
    shared_strip_prefix_name,
)
from .ownership import object_meta
from .scheduler import COMM_PORT, DASHBOARD_PORT
from .spec import ClusterSpec

__all__ = [
    "TRAEFIK_API_VERSION",
    "build_ingressroute",
    "build_ingressroute_tcp",
    "build_drop_credentials_middleware",
    "build_forward_auth_middleware",
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


def _instance_object(kind: str, instance: str, namespace: str, name: str, body: dict[str, Any]
                     ) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": TRAEFIK_API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": instance_selector(instance)},
        "spec": body,
    }


def build_strip_prefix_middleware(instance: str, namespace: str, route_prefix: str
                                  ) -> dict[str, Any]:  # fmt: skip
    """Strips ``<prefix>/clusters/<one segment>`` from every dashboard request."""
    prefix = route_prefix.rstrip("/")
    # Regex-quote the prefix; a cluster segment never contains "/".
    quoted = "".join(f"\\{c}" if not c.isalnum() and c not in "/-_" else c for c in prefix)
    body = {"stripPrefixRegex": {"regex": [f"^{quoted}/clusters/[^/]+"]}}
    return _instance_object("Middleware", instance, namespace,
                            shared_strip_prefix_name(instance), body)  # fmt: skip


def build_forward_auth_middleware(instance: str, namespace: str, auth_url: str) -> dict[str, Any]:
    """Asks the api service whether the request may see the dashboard (owner or admin).

    Its answer carries the cluster's dashboard credential, which Traefik copies onto
    the proxied request (replacing any the browser sent); the scheduler needs it.
    """
    body = forward_auth_spec(auth_url)
    return _instance_object("Middleware", instance, namespace, shared_auth_name(instance), body)


def build_drop_credentials_middleware(instance: str, namespace: str) -> dict[str, Any]:
    """Removes the viewer's own credentials from every proxied dashboard request."""
    body = drop_credentials_spec()
    return _instance_object("Middleware", instance, namespace,
                            shared_drop_credentials_name(instance), body)  # fmt: skip


def build_ingressroute(spec: ClusterSpec) -> dict[str, Any]:
    middlewares: list[dict[str, str]] = []
    if spec.dashboard_auth_middleware:
        auth = {"name": spec.dashboard_auth_middleware}
        if spec.dashboard_auth_middleware_namespace:
            auth["namespace"] = spec.dashboard_auth_middleware_namespace
        middlewares.append(auth)
    middlewares.append({"name": shared_drop_credentials_name(spec.instance)})
    middlewares.append({"name": shared_strip_prefix_name(spec.instance)})
    route = {
        "kind": "Rule",
        "match": f"PathPrefix(`{dashboard_path(spec)}`)",
        "middlewares": middlewares,
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
