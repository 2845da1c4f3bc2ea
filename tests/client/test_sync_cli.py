"""Blocking API from a plain thread, HTTP proxies, and the CLI."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import warnings

import dask
import pytest
import tornado.web

from jhub_gateway.client import (
    BasicAuth,
    Gateway,
    GatewayCluster,
    GatewayValueError,
    GatewayWarning,
)
from jhub_gateway.client.__main__ import main
from tests.client.client_fakes import FakeGateway


def _in_thread(fn):
    """Run fn in a fresh non-asyncio thread; return its result or re-raise."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert not t.is_alive(), "sync API call hung"
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_sync_api_from_plain_thread(fake):
    def scenario():
        with Gateway(fake.address, auth=BasicAuth("alice", "pw")) as gw:
            assert gw.list_clusters() == []
            opts = gw.cluster_options()
            opts.worker_cores = 4
            with gw.new_cluster(opts) as cluster:
                assert cluster.status == "running"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    cluster.scale(10)
                assert [type(w.message) for w in caught] == [GatewayWarning]
                cluster.adapt(minimum=0, maximum=2)
                names = [r.name for r in gw.list_clusters()]
                again = gw.connect(cluster.name)
                again.close()
                name = cluster.name
            with pytest.raises(GatewayValueError):
                gw.get_cluster("nope")
            return name, names, gw.get_versions()["server"]

    name, names, server = _in_thread(scenario)
    assert names == [name]
    assert server == {"version": "fake-1.0"}
    assert fake.clusters[name].options["worker_cores"] == 4
    assert fake.clusters[name].status == "STOPPED"  # closed by the with-block


def test_sync_cluster_shutdown_and_from_name(fake):
    fake.add_cluster("existing", status="RUNNING")

    def scenario():
        c = GatewayCluster.from_name(
            "existing", address=fake.address, auth=BasicAuth("alice", "pw")
        )
        assert c.shutdown_on_close is False
        c.shutdown()
        return c.status

    assert _in_thread(scenario) == "closed"
    assert fake.clusters["existing"].status == "STOPPED"


class _RecordingProxy(tornado.web.RequestHandler):
    seen: list = []

    def get(self):
        self.seen.append((self.request.uri, self.request.headers.get("Proxy-Authorization")))
        self.finish({"version": "via-proxy"})


@pytest.fixture
def http_proxy():
    """A forward proxy stand-in: answers every absolute-URI request itself."""
    proxy = FakeGateway()
    proxy.app = lambda: tornado.web.Application([(r".*", _RecordingProxy)])
    _RecordingProxy.seen = []
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_explicit_and_environment_proxies(http_proxy, monkeypatch):
    target = "http://gateway.invalid:8000"
    url = f"http://puser:ppass@127.0.0.1:{http_proxy.port}"
    with dask.config.set({"gateway.http-client.proxy": url}):
        with Gateway(target, auth=BasicAuth("a", "b")) as gw:
            assert gw.get_versions()["server"] == {"version": "via-proxy"}
    uri, auth = _RecordingProxy.seen[-1]
    assert uri == target + "/api/version"
    assert base64.b64decode(auth.split()[1]) == b"puser:ppass"

    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{http_proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Gateway(target, auth=BasicAuth("a", "b")) as gw:  # default: proxy: true
        assert gw.get_versions()["server"] == {"version": "via-proxy"}
    assert len(_RecordingProxy.seen) == 2


def test_cli_in_process(fake, capsys, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hubtoken")
    fake.add_cluster("c-1", owner="hubuser", status="RUNNING", reason="SchedulerReady")
    base = ["--address", fake.address, "--auth", "jupyterhub"]
    assert main([*base, "list"]) == 0
    out = capsys.readouterr().out
    assert "c-1" in out and "RUNNING" in out and "SchedulerReady" in out
    assert main([*base, "options"]) == 0
    assert "worker_cores = 1  (1 <= int <= 4)" in capsys.readouterr().out
    assert main([*base, "stop", "c-1"]) == 0
    assert fake.clusters["c-1"].status == "STOPPED"
    assert main([*base, "list", "--status", "bogus"]) == 1
    assert "unknown cluster status" in capsys.readouterr().err


def test_cli_module_entry_point(fake):
    env = dict(
        os.environ,
        DASK_GATEWAY__ADDRESS=fake.address,
        DASK_GATEWAY__AUTH__KWARGS__USERNAME="alice",
        DASK_GATEWAY__AUTH__KWARGS__PASSWORD="pw",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "jhub_gateway.client", "options"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "profile = 'small'  (one of small, large)" in proc.stdout
