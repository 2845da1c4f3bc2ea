from __future__ import annotations

import base64
import sys
import types

import dask
import pytest

from jhub_gateway.client import (
    BasicAuth,
    Gateway,
    GatewayAuth,
    JupyterHubAuth,
    KerberosAuth,
    get_auth,
)
from jhub_gateway.client import config as cfg
from jhub_gateway.client.gateway import resolve_addresses
from jhub_gateway.client.http import proxy_settings


def test_defaults_loaded_with_upstream_and_new_keys():
    conf = dask.config.get("gateway")
    assert conf["auth"] == {"type": "basic", "kwargs": {}}
    assert conf["http-client"]["proxy"] is True
    assert conf["cluster"]["start-timeout"] == 600
    registered = [d["gateway"] for d in dask.config.defaults if "gateway" in d]
    assert any(g["cluster"]["show-progress"] is True for g in registered)
    assert conf["address"] is None


@pytest.mark.parametrize(
    ("address", "proxy", "expected"),
    [
        ("http://gw.example:8000", None, "gateway://gw.example:8000"),
        ("http://gw.example", None, "gateway://gw.example:80"),
        ("https://gw.example/services/dask-gateway/", None, "gateway://gw.example:443"),
        ("http://10.0.0.1:8000", 8786, "gateway://10.0.0.1:8786"),
        ("http://gw.example", "tls://proxy.example:9000", "gateway://proxy.example:9000"),
        ("http://gw.example", "proxy.example:9000", "gateway://proxy.example:9000"),
        ("http://gw.example", "9001", "gateway://gw.example:9001"),
        ("http://[::1]:8000", None, "gateway://[::1]:8000"),
    ],
)
def test_proxy_address_inference(address, proxy, expected):
    addr, proxy_addr, public = resolve_addresses(address, proxy, None)
    assert proxy_addr == expected
    assert addr == address.rstrip("/")
    assert public == addr


def test_addresses_from_env_templates(monkeypatch):
    monkeypatch.setenv("GW_HOST", "gw.example")
    conf = {
        "gateway.address": "http://{GW_HOST}:8000/services/dask-gateway",
        "gateway.public-address": "https://{GW_HOST}/services/dask-gateway/",
        "gateway.proxy-address": "{GW_HOST}:8786",
    }
    with dask.config.set(conf):
        addr, proxy, public = resolve_addresses(None, None, None)
    assert addr == "http://gw.example:8000/services/dask-gateway"
    assert proxy == "gateway://gw.example:8786"
    assert public == "https://gw.example/services/dask-gateway"


def test_missing_address_and_missing_env_var_are_clear():
    with pytest.raises(ValueError, match="gateway.address"):
        resolve_addresses(None, None, None)
    with dask.config.set({"gateway.address": "http://{NO_SUCH_VAR_XYZ}"}):
        with pytest.raises(ValueError, match="NO_SUCH_VAR_XYZ"):
            resolve_addresses(None, None, None)


def test_dask_env_variables_preset_the_address(monkeypatch):
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", "http://from-env:1234")
    monkeypatch.setenv("DASK_GATEWAY__PROXY_ADDRESS", "5678")
    dask.config.refresh()
    try:
        gw = Gateway(asynchronous=False)
        try:
            assert gw.address == "http://from-env:1234"
            assert gw.proxy_address == "gateway://from-env:5678"
        finally:
            gw.close()
        # Our defaults survive a refresh (they are registered defaults).
        assert dask.config.get("gateway.cluster.start-timeout") == 600
    finally:
        monkeypatch.undo()
        dask.config.refresh()
    assert dask.config.get("gateway.address") is None


def test_start_timeout_and_progress_parsing():
    with dask.config.set({"gateway.cluster.start-timeout": "2 minutes"}):
        assert cfg.start_timeout() == 120
    with dask.config.set({"gateway.cluster.start-timeout": 0}):
        assert cfg.start_timeout() is None
    with dask.config.set({"gateway.cluster.show-progress": "false"}):
        assert cfg.show_progress() is False


def test_cluster_option_defaults_are_templated(monkeypatch):
    monkeypatch.setenv("MY_IMAGE", "repo/image:1")
    with dask.config.set({"gateway.cluster.options": {"image": "{MY_IMAGE}", "worker_cores": 2}}):
        assert cfg.cluster_option_defaults() == {"image": "repo/image:1", "worker_cores": 2}


def test_get_auth_by_name_instance_class_and_path(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "s3cr3t-hub")
    basic = BasicAuth("bob", "pw")
    assert get_auth(basic) is basic
    assert isinstance(get_auth("basic"), BasicAuth)
    assert isinstance(get_auth(None), BasicAuth)  # gateway.auth.type default
    hub = get_auth("jupyterhub")
    assert isinstance(hub, JupyterHubAuth) and hub.api_token == "s3cr3t-hub"
    assert "s3cr3t-hub" not in repr(hub)
    assert isinstance(get_auth("jhub_gateway.client.auth.BasicAuth"), BasicAuth)
    assert isinstance(get_auth(BasicAuth), BasicAuth)
    with pytest.raises(TypeError):
        get_auth(42)
    with pytest.raises(ValueError, match="unknown auth type"):
        get_auth("nonsense")
    with pytest.raises(ImportError):
        get_auth("jhub_gateway.client.auth.NoSuchAuth")


def test_auth_kwargs_from_config_are_templated(monkeypatch):
    monkeypatch.setenv("GW_USER", "carol")
    conf = {"gateway.auth.type": "basic", "gateway.auth.kwargs": {"username": "{GW_USER}"}}
    with dask.config.set(conf):
        auth = get_auth()
    assert auth.username == "carol"
    headers, _ = auth.pre_request(None)
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"carol:"


def test_custom_auth_class_must_produce_gateway_auth():
    mod = types.ModuleType("fake_auth_mod")

    class NotAuth:
        pass

    class Custom(GatewayAuth):
        def pre_request(self, resp):  # upstream style: (headers, context)
            return {"Authorization": "token x"}, None

    mod.NotAuth, mod.Custom = NotAuth, Custom
    sys.modules["fake_auth_mod"] = mod
    try:
        assert isinstance(get_auth("fake_auth_mod.Custom"), Custom)
        with pytest.raises(TypeError, match="GatewayAuth"):
            get_auth("fake_auth_mod.NotAuth")
    finally:
        del sys.modules["fake_auth_mod"]


def test_jupyterhub_auth_needs_a_token(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="JUPYTERHUB_API_TOKEN"):
        JupyterHubAuth()
    assert JupyterHubAuth("abc").initial_headers() == {"Authorization": "jupyterhub abc"}


def test_kerberos_without_module_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "kerberos", None)
    with pytest.raises(ImportError, match="pykerberos"):
        KerberosAuth()


def test_proxy_settings_modes(monkeypatch):
    with dask.config.set({"gateway.http-client.proxy": True}):
        assert proxy_settings() == (True, None, None)
    with dask.config.set({"gateway.http-client.proxy": False}):
        assert proxy_settings() == (False, None, None)
    monkeypatch.setenv("PROXY_HOST", "proxy.example")
    with dask.config.set({"gateway.http-client.proxy": "http://u:p@{PROXY_HOST}:3128"}):
        trust_env, url, headers = proxy_settings()
    assert trust_env is False
    assert str(url) == "http://proxy.example:3128"
    assert headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
