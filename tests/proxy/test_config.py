"""The pure config builders: shapes Traefik relies on."""

from __future__ import annotations

import pytest

from jhub_gateway.hub_service.proxy.config import (
    ClusterRoute,
    dynamic_config,
    is_live,
    normalize_prefix,
    split_address,
    static_config,
)


def test_static_config_keeps_ping_and_api_on_the_private_entrypoint():
    cfg = static_config(
        web=":8000",
        internal="127.0.0.1:9",
        tcp=None,
        routes_dir="/r",
        log_level="WARN",
        throttle="0ms",
    )
    assert set(cfg["entryPoints"]) == {"web", "traefik"}
    assert cfg["ping"] == {"entryPoint": "traefik"}
    assert cfg["api"] == {"insecure": True, "dashboard": False}  # insecure = on "traefik" only
    assert cfg["providers"]["file"] == {"directory": "/r", "watch": True}
    cfg = static_config(
        web=":8000",
        internal="127.0.0.1:9",
        tcp=":8786",
        routes_dir="/r",
        log_level="WARN",
        throttle="0ms",
    )
    assert cfg["entryPoints"]["tcp"]["address"] == ":8786"
    assert cfg["experimental"] == {"fastProxy": {}}  # the default
    assert "experimental" not in static_config(
        web=":8000",
        internal="127.0.0.1:9",
        tcp=None,
        routes_dir="/r",
        log_level="WARN",
        throttle="0ms",
        fast_proxy=False,
    )


def test_dynamic_config_for_one_cluster():
    cfg = dynamic_config(
        prefix="/p/",
        api_url="http://api",
        auth_url="http://api/p/auth",
        tcp_entrypoint="web",
        routes={"x": ClusterRoute("127.0.0.1:8787", "127.0.0.1:8786")},
    )
    http, tcp = cfg["http"], cfg["tcp"]
    assert http["routers"]["gateway-api"]["rule"] == (
        "(Path(`/p`) || PathPrefix(`/p/`)) && !PathPrefix(`/p/api/v1/dashboard-auth`)"
    )
    assert http["routers"]["dashboard-x"] == {
        "entryPoints": ["web"],
        "rule": "PathPrefix(`/p/clusters/x/`)",
        "service": "dashboard-x",
        "middlewares": ["gateway-dashboard-auth", "gateway-dashboard-drop-credentials", "strip-x"],
        "priority": 100,
    }
    assert http["services"]["dashboard-x"]["loadBalancer"]["servers"] == [
        {"url": "http://127.0.0.1:8787"}
    ]
    assert http["middlewares"]["strip-x"] == {"stripPrefix": {"prefixes": ["/p/clusters/x"]}}
    assert http["middlewares"]["gateway-dashboard-auth"]["forwardAuth"]["authRequestHeaders"] == [
        "Authorization",
        "Cookie",
        "Accept",  # lets the service redirect browsers to the hub login
    ]
    # the dashboard credential goes onto the proxied request (the scheduler checks it)
    drop = http["middlewares"]["gateway-dashboard-drop-credentials"]["headers"]
    assert drop["customRequestHeaders"] == {"Cookie": "", "Authorization": ""}
    forward_auth = http["middlewares"]["gateway-dashboard-auth"]["forwardAuth"]
    assert forward_auth["authResponseHeaders"] == ["X-Jhub-Gateway-Dashboard-Credential"]
    assert tcp["routers"]["scheduler-x"]["rule"] == "HostSNI(`daskgateway-x`)"
    assert tcp["routers"]["scheduler-x"]["tls"] == {"passthrough": True}


def test_dynamic_config_without_clusters():
    cfg = dynamic_config(
        prefix="/", api_url="http://api", auth_url=None, tcp_entrypoint="tcp", routes={}
    )
    assert "tcp" not in cfg
    # the API router only drops forwarded headers the service never reads
    assert cfg["http"]["middlewares"] == {
        "gateway-api-headers": {
            "headers": {
                "customRequestHeaders": {
                    "X-Forwarded-For": "",
                    "X-Forwarded-Host": "",
                    "X-Forwarded-Port": "",
                    "X-Forwarded-Server": "",
                    "X-Real-Ip": "",
                }
            }
        }
    }
    assert cfg["http"]["routers"]["gateway-api"]["middlewares"] == ["gateway-api-headers"]
    # the forward-auth endpoint stays off the public router even without dashboards
    assert cfg["http"]["routers"]["gateway-api"]["rule"] == (
        "PathPrefix(`/`) && !PathPrefix(`/api/v1/dashboard-auth`)"
    )


def test_is_live_compares_targets():
    route = ClusterRoute(None, "h:1")
    raw = {
        "tcpRouters": {"scheduler-x@file": {"status": "enabled"}},
        "tcpServices": {"scheduler-x@file": {"loadBalancer": {"servers": [{"address": "h:1"}]}}},
    }
    assert is_live(raw, "x", route)
    assert not is_live(raw, "x", ClusterRoute(None, "h:2"))
    assert not is_live(raw, "x", None)
    assert is_live({}, "x", None)


@pytest.mark.parametrize("bad", ["8000", "h:", "h:70000", "a b:1"])
def test_split_address_refuses(bad):
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_address(bad)


def test_split_address_and_prefix():
    assert split_address(":8000") == ("", 8000)
    assert split_address("[::1]:0") == ("::1", 0)
    assert normalize_prefix("/") == "" and normalize_prefix("/a/b/") == "/a/b"


def test_dynamic_config_names_the_default_certificate():
    cfg = dynamic_config(
        prefix="/",
        api_url="http://api",
        auth_url=None,
        tcp_entrypoint="web",
        routes={},
        default_certificate=("/d/tls.crt", "/d/tls.key"),
    )
    assert cfg["tls"] == {
        "stores": {
            "default": {"defaultCertificate": {"certFile": "/d/tls.crt", "keyFile": "/d/tls.key"}}
        }
    }
    without = dynamic_config(
        prefix="/", api_url="http://api", auth_url=None, tcp_entrypoint="web", routes={}
    )
    assert "tls" not in without
