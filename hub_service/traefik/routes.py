"""Traefik configuration as plain data (pure functions, golden-testable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClusterRoute:
    name: str
    dashboard_url: str | None  # http://host:port of the scheduler's dashboard
    scheduler_address: str  # host:port of the scheduler's TLS listener


def static_config(
    web: str, internal: str, tcp: str | None, routes_dir: str, log_level: str
) -> dict[str, Any]:
    entry_points = {"web": {"address": web}, "traefik": {"address": internal}}
    if tcp:
        entry_points["tcp"] = {"address": tcp}
    return {
        "entryPoints": entry_points,
        "ping": {"entryPoint": "traefik"},
        # the API is only on the private loopback entrypoint; we poll it to know routes are live
        "api": {"insecure": True, "dashboard": False},
        "providers": {
            # Routes must be live before a cluster is reported RUNNING: apply changes at once.
            "providersThrottleDuration": "0s",
            "file": {"directory": routes_dir, "watch": True},
        },
        "log": {"level": log_level},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def dynamic_config(
    prefix: str,
    api_url: str,
    clusters: list[ClusterRoute],
    auth_url: str | None,
    tcp_entrypoint: str,
) -> dict[str, Any]:
    base = prefix.rstrip("/")
    routers: dict[str, Any] = {
        "api": {
            "rule": f"PathPrefix(`{base or '/'}`)",
            "service": "api",
            "entryPoints": ["web"],
            "priority": 1,
        },
    }
    services: dict[str, Any] = {"api": {"loadBalancer": {"servers": [{"url": api_url}]}}}
    middlewares: dict[str, Any] = {}
    tcp_routers: dict[str, Any] = {}
    tcp_services: dict[str, Any] = {}
    if auth_url:
        middlewares["dashboard-auth"] = {
            "forwardAuth": {"address": auth_url, "authRequestHeaders": ["Authorization", "Cookie"]}
        }
    for route in clusters:
        key = f"cluster-{route.name}"
        if route.dashboard_url:
            path = f"{base}/clusters/{route.name}"
            middlewares[f"{key}-strip"] = {"stripPrefix": {"prefixes": [path]}}
            routers[key] = {
                "rule": f"PathPrefix(`{path}/`)",
                "service": key,
                "entryPoints": ["web"],
                "middlewares": (["dashboard-auth"] if auth_url else []) + [f"{key}-strip"],
                "priority": 100,
            }
            services[key] = {"loadBalancer": {"servers": [{"url": route.dashboard_url}]}}
        tcp_routers[key] = {
            "rule": f"HostSNI(`daskgateway-{route.name}`)",
            "service": key,
            "entryPoints": [tcp_entrypoint],
            "tls": {"passthrough": True},
        }
        tcp_services[key] = {"loadBalancer": {"servers": [{"address": route.scheduler_address}]}}
    config: dict[str, Any] = {"http": {"routers": routers, "services": services}}
    if middlewares:
        config["http"]["middlewares"] = middlewares
    if tcp_routers:
        config["tcp"] = {"routers": tcp_routers, "services": tcp_services}
    return config
