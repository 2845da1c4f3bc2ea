"""Traefik's static and dynamic configuration as plain data (pure, no I/O).

Traefik reads YAML; JSON is valid YAML, so both files are written with ``json``
and no YAML library is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jhub_gateway.dashboard_credential import AUTH_PATH, drop_credentials_spec, forward_auth_spec

# Traefik names are also used in its API paths (``<name>@file``); cluster names are
# slugs, so refuse anything else rather than quoting it into rules.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):(?P<port>[0-9]{1,5})$")

API_ROUTER = "gateway-api"
API_HEADERS = "gateway-api-headers"
AUTH_MIDDLEWARE = "gateway-dashboard-auth"
DROP_CREDENTIALS = "gateway-dashboard-drop-credentials"
SNI_PREFIX = "daskgateway-"


@dataclass(frozen=True)
class ClusterRoute:
    """Where one cluster's traffic goes."""

    dashboard_url: str | None  # http://host:port of the scheduler dashboard, or None
    scheduler_address: str  # host:port of the scheduler's TLS listener


def split_address(value: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); raises ValueError on anything else."""
    match = _ADDRESS.match(value)
    if match is None or int(match["port"]) > 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return match["host"].strip("[]"), int(match["port"])


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"cluster name {name!r} cannot be routed (letters, digits, - and _ only)")
    return name


def normalize_prefix(prefix: str) -> str:
    """``/a/b/`` -> ``/a/b``; the root prefix becomes the empty string."""
    if not prefix.startswith("/") or any(c in prefix for c in "`\"' \t\n"):
        raise ValueError(f"prefix must be an absolute URL path, got {prefix!r}")
    return prefix.rstrip("/")


def dashboard_url(url: str) -> str:
    # the scheduler runtime reports http://host:port; accept a bare host:port too
    return url if "://" in url else "http://" + url


def router_names(name: str) -> tuple[str, str]:
    """(HTTP dashboard router, TCP scheduler router) of a cluster."""
    return f"dashboard-{name}", f"scheduler-{name}"


def static_config(
    *,
    web: str,
    internal: str,
    tcp: str | None,
    routes_dir: str,
    log_level: str,
    throttle: str,
    read_timeout: str = "60s",
    fast_proxy: bool = True,
) -> dict[str, Any]:
    # A short drain on stop; Traefik's default 10 s grace would stall service shutdown.
    # Traefik does not apply the HTTP readTimeout to routed TLS passthrough, so quiet
    # scheduler connections outlive it (tests/proxy/test_shared_port.py holds it to that).
    transport = {
        "lifeCycle": {"graceTimeOut": "1s"},
        "respondingTimeouts": {"readTimeout": read_timeout},
    }
    # Drop X_Forwarded_For-style aliases so no client can spoof headers Traefik sets.
    http = {"aliasHeadersStrategy": "delete"}
    entry_points: dict[str, Any] = {
        "web": {"address": web, "transport": transport, "http": http},
        # "traefik" is where api.insecure and ping live: a loopback-only port
        "traefik": {"address": internal, "http": http},
    }
    if tcp is not None:
        entry_points["tcp"] = {"address": tcp, "transport": transport}
    extra: dict[str, Any] = {}
    if fast_proxy:
        # Traefik's HTTP/1.1 proxy to the servers behind it (the service, dashboards):
        # measured ~35% less CPU per API request than the default one
        extra["experimental"] = {"fastProxy": {}}
    return {
        **extra,
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": log_level, "noColor": True},
        "entryPoints": entry_points,
        "providers": {
            "providersThrottleDuration": throttle,
            "file": {"directory": routes_dir, "watch": True},
        },
        "ping": {"entryPoint": "traefik"},
        "api": {"insecure": True, "dashboard": False},
    }


#: forwarded headers Traefik adds that the API never reads; X-Forwarded-Proto stays
#: (whether cookies must be Secure). Parsing them was ~5% of the service's time per request.
UNREAD_FORWARDED_HEADERS = (
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Real-Ip",
)


def api_headers_spec() -> dict[str, Any]:
    """Traefik's headers Middleware of the API router: an empty value deletes a header."""
    return {"headers": {"customRequestHeaders": dict.fromkeys(UNREAD_FORWARDED_HEADERS, "")}}


def api_router_rule(base: str) -> str:
    """The public API router's rule: everything under the prefix but the forward-auth.

    Traefik's forwardAuth calls the service's internal address; through the public
    one the endpoint would hand a dashboard credential to the browser (and answer
    for a made-up ``X-Forwarded-Uri``).
    """
    under = f"(Path(`{base}`) || PathPrefix(`{base}/`))" if base else "PathPrefix(`/`)"
    return f"{under} && !PathPrefix(`{base}/{AUTH_PATH}`)"


def dynamic_config(
    *,
    prefix: str,
    api_url: str,
    auth_url: str | None,
    tcp_entrypoint: str,
    routes: dict[str, ClusterRoute],
    default_certificate: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Every router Traefik should serve: the API plus each cluster's dashboard and TLS.

    ``default_certificate`` is ``(cert file, key file)`` of the certificate Traefik
    presents when it terminates TLS itself (no route here asks it to). Without one,
    Traefik generates an RSA-2048 key on every configuration change: 20-150 ms of
    each route change, which a cluster's start waits for.
    """
    base = normalize_prefix(prefix)
    api_rule = api_router_rule(base)
    routers: dict[str, Any] = {
        # explicit priorities: rule length (Traefik's default) would rank the API's
        # two-clause rule above a dashboard's
        API_ROUTER: {
            "entryPoints": ["web"],
            "rule": api_rule,
            "service": API_ROUTER,
            "priority": 1,
            "middlewares": [API_HEADERS],
        }
    }
    services: dict[str, Any] = {API_ROUTER: {"loadBalancer": {"servers": [{"url": api_url}]}}}
    middlewares: dict[str, Any] = {API_HEADERS: api_headers_spec()}
    if auth_url:
        middlewares[AUTH_MIDDLEWARE] = forward_auth_spec(auth_url)
    tcp_routers: dict[str, Any] = {}
    tcp_services: dict[str, Any] = {}
    for name, route in sorted(routes.items()):
        dash, sched = router_names(name)
        if route.dashboard_url:
            path = f"{base}/clusters/{name}"
            strip = f"strip-{name}"
            middlewares[strip] = {"stripPrefix": {"prefixes": [path]}}
            middlewares[DROP_CREDENTIALS] = drop_credentials_spec()
            # auth sees the original path (X-Forwarded-Uri), so it runs before the strip
            chain = ([AUTH_MIDDLEWARE] if auth_url else []) + [DROP_CREDENTIALS, strip]
            routers[dash] = {
                "entryPoints": ["web"],
                "rule": f"PathPrefix(`{path}/`)",
                "service": dash,
                "middlewares": chain,
                "priority": 100,
            }
            services[dash] = {
                "loadBalancer": {"servers": [{"url": dashboard_url(route.dashboard_url)}]}
            }
        tcp_routers[sched] = {
            "entryPoints": [tcp_entrypoint],
            "rule": f"HostSNI(`{SNI_PREFIX}{name}`)",
            "service": sched,
            "tls": {"passthrough": True},
        }
        tcp_services[sched] = {"loadBalancer": {"servers": [{"address": route.scheduler_address}]}}
    http: dict[str, Any] = {"routers": routers, "services": services}
    if middlewares:
        http["middlewares"] = middlewares
    config: dict[str, Any] = {"http": http}
    if default_certificate is not None:
        cert_file, key_file = default_certificate
        config["tls"] = {
            "stores": {
                "default": {"defaultCertificate": {"certFile": cert_file, "keyFile": key_file}}
            }
        }
    if tcp_routers:
        config["tcp"] = {"routers": tcp_routers, "services": tcp_services}
    return config


def is_live(raw: dict[str, Any], name: str, route: ClusterRoute | None) -> bool:
    """Does Traefik's ``/api/rawdata`` show exactly this cluster's routes (or none)?"""
    dash, sched = router_names(name)
    routers = raw.get("routers") or {}
    services = raw.get("services") or {}
    tcp_routers = raw.get("tcpRouters") or {}
    tcp_services = raw.get("tcpServices") or {}
    if route is None:
        return f"{dash}@file" not in routers and f"{sched}@file" not in tcp_routers
    if (tcp_routers.get(f"{sched}@file") or {}).get("status") != "enabled":
        return False
    if _targets(tcp_services.get(f"{sched}@file"), "address") != [route.scheduler_address]:
        return False
    if route.dashboard_url is None:
        return f"{dash}@file" not in routers
    if (routers.get(f"{dash}@file") or {}).get("status") != "enabled":
        return False
    return _targets(services.get(f"{dash}@file"), "url") == [dashboard_url(route.dashboard_url)]


def router_error(raw: dict[str, Any], name: str) -> str | None:
    """Traefik's own complaint about a cluster's routers, for error messages."""
    dash, sched = router_names(name)
    for table, key in (("routers", dash), ("tcpRouters", sched)):
        errors = ((raw.get(table) or {}).get(f"{key}@file") or {}).get("error")
        if errors:
            return "; ".join(map(str, errors))
    return None


def _targets(service: dict[str, Any] | None, field: str) -> list[str]:
    servers = ((service or {}).get("loadBalancer") or {}).get("servers") or []
    return [s.get(field, "") for s in servers]
