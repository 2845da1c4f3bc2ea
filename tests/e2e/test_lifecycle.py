"""Failures and policies with real processes: restarts, crashes, idle timeout, adaptive."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import basic, running_gateway
from tests.polling import wait_for

EXTRA_CONFIG = """
from jhub_gateway.options import Options, Float
c.GatewayApp.cluster_options = Options(
    Float("idle_timeout", default=0, min=0, max=600),
    Float("max_lifetime", default=0, min=0, max=600),
    handler=lambda o: {
        "idle_timeout": o.idle_timeout, "max_lifetime": o.max_lifetime, "worker_memory": "512 M"
    },
)
c.ClusterConfig.adaptive_period = 0.5
c.UserQuotas.max_clusters = 1
c.UserQuotas.max_workers = 2
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("lifecycle"), extra_config=EXTRA_CONFIG) as gw:
        yield gw


def _status(gateway, name, user="alice"):
    return gateway.request("GET", f"/api/v1/clusters/{name}", user=user)[1]


def _traefik(gateway):
    return next(
        p for p in gateway.processes_under(gateway.data_dir / "traefik") if "traefik" in p.name()
    )


def test_service_restart_keeps_running_clusters(gateway):
    gw = Gateway(gateway.address, auth=BasicAuth("alice"))
    cluster = gw.new_cluster(shutdown_on_close=False)
    cluster.scale(1)
    client = cluster.get_client(set_as_default=False)
    client.wait_for_workers(1, timeout=90)
    assert client.submit(sum, [1, 2]).result(timeout=60) == 3
    client.close()
    cluster.close()
    gw.close()

    status, body = gateway.request("POST", "/api/v1/clusters/", {}, user="alice2")
    old_name = body["name"]
    gateway.request("DELETE", f"/api/v1/clusters/{old_name}", user="alice2")
    wait_for(lambda: _status(gateway, old_name, "alice2")["status"] == "STOPPED", what="STOPPED")

    scheduler_pids = {p.pid for p in gateway.cluster_processes()}
    gateway.stop()
    assert all(psutil.pid_exists(pid) for pid in scheduler_pids)  # clusters outlive the service
    gateway.start()
    assert _status(gateway, cluster.name)["status"] == "RUNNING"
    with Gateway(gateway.address, auth=BasicAuth("alice")) as gw:
        again = gw.connect(cluster.name)
        client = again.get_client(set_as_default=False)
        assert client.submit(sum, [4, 5]).result(timeout=60) == 9
        client.close()
        events = gateway.request("GET", f"/api/v1/clusters/{cluster.name}/events", user="alice")[1]
        assert "GatewayRestarted" in [e["reason"] for e in events["events"]]
        status, stopped = gateway.request("GET", "/api/v1/clusters/?status=stopped", user="alice2")
        assert stopped[old_name]["status"] == "STOPPED"  # finished clusters are still listed
        again.shutdown()


def test_killed_scheduler_fails_the_cluster_with_a_reason(gateway):
    with Gateway(gateway.address, auth=BasicAuth("bob")) as gw:
        cluster = gw.new_cluster()
        cluster.scale(1)
        wait_for(
            lambda: _status(gateway, cluster.name, "bob")["workers"]["active"] == 1, what="worker"
        )
        before = {p.pid for p in gateway.cluster_processes()}
        scheduler = next(
            p for p in gateway.cluster_processes() if "scheduler" in " ".join(p.cmdline())
        )
        os.kill(scheduler.pid, signal.SIGKILL)
        wait_for(lambda: _status(gateway, cluster.name, "bob")["status"] == "FAILED", what="FAILED")
        report = _status(gateway, cluster.name, "bob")
        assert report["reason"] == "SchedulerExited" and "exited with code" in report["message"]
        wait_for(
            lambda: not any(psutil.pid_exists(p) for p in before), what="workers to be stopped"
        )
        cluster.close(shutdown=False)


def test_killed_traefik_is_restarted_with_routes(gateway):
    with Gateway(gateway.address, auth=BasicAuth("carol")) as gw:
        cluster = gw.new_cluster()
        old = _traefik(gateway)
        old.kill()
        wait_for(lambda: _traefik_alive_new(gateway, old.pid), timeout=60, what="traefik restart")
        wait_for(lambda: _healthy(gateway), what="api back through traefik")
        client = cluster.get_client(set_as_default=False)  # scheduler TLS route is back too
        assert client.scheduler_info()["id"]
        client.close()
        cluster.shutdown()


def _healthy(gateway):
    try:
        return gateway.request("GET", "/api/health")[0] == 200
    except OSError:  # the new Traefik is not listening yet
        return False


def _traefik_alive_new(gateway, old_pid):
    try:
        return _traefik(gateway).pid != old_pid
    except StopIteration:
        return False


def test_idle_timeout_stops_the_cluster(gateway):
    with Gateway(gateway.address, auth=BasicAuth("dave")) as gw:
        # submit, not new_cluster: on a loaded machine the idle stop can come before
        # the client's first look at the running cluster, which new_cluster reports
        # as "already stopped"
        name = gw.submit(idle_timeout=2)
        wait_for(lambda: _status(gateway, name, "dave")["status"] == "STOPPED", what="idle stop")
        report = _status(gateway, name, "dave")
        assert report["reason"] == "IdleTimeout"


def test_max_lifetime_stops_a_busy_cluster(gateway):
    with Gateway(gateway.address, auth=BasicAuth("frank")) as gw:
        name = gw.submit(max_lifetime=3)  # submit: see test_idle_timeout_stops_the_cluster
        wait_for(
            lambda: _status(gateway, name, "frank")["status"] == "STOPPED", what="lifetime stop"
        )
        report = _status(gateway, name, "frank")
        assert report["reason"] == "MaxLifetimeReached" and "at most 3 s" in report["message"]


def test_adaptive_scaling_up_and_down(gateway):
    with Gateway(gateway.address, auth=BasicAuth("erin")) as gw:
        cluster = gw.new_cluster()
        cluster.adapt(minimum=0, maximum=2)
        client = cluster.get_client(set_as_default=False)
        futures = client.map(time.sleep, [0.5] * 40, pure=False)
        wait_for(
            lambda: _status(gateway, cluster.name, "erin")["workers"]["active"] >= 1,
            timeout=90,
            what="adaptive scale up",
        )
        client.gather(futures)
        del futures
        wait_for(
            lambda: _status(gateway, cluster.name, "erin")["workers"]["active"] == 0,
            timeout=90,
            what="adaptive scale down",
        )
        client.close()
        cluster.shutdown()


def test_quotas_on_clusters_and_workers(gateway):
    status, body = gateway.request("POST", "/api/v1/clusters/", {}, user="quinn")
    assert status == 201
    name = body["name"]
    status, refused = gateway.request("POST", "/api/v1/clusters/", {}, user="quinn")
    assert status == 403 and refused["error"] == "quota_exceeded"
    assert "1 active cluster(s), the most allowed is 1" in refused["message"]
    wait_for(lambda: _status(gateway, name, "quinn")["status"] == "RUNNING", what="RUNNING")
    status, result = gateway.request(
        "POST", f"/api/v1/clusters/{name}/scale", {"count": 5}, user="quinn"
    )
    assert status == 200 and result["ok"] is False and "quota" in result["msg"]
    wait_for(
        lambda: _status(gateway, name, "quinn")["workers"]["requested"] == 2,
        what="2 workers requested",
    )
    status, me = gateway.request("GET", "/api/v1/users/me", user="quinn")
    assert me["limits"]["clusters"] == 1 and me["usage"] == {
        **me["usage"],
        "clusters": 1,
        "workers": 2,
    }
    gateway.request("DELETE", f"/api/v1/clusters/{name}", user="quinn")
    wait_for(lambda: _status(gateway, name, "quinn")["status"] == "STOPPED", what="STOPPED")
    status, _ = gateway.request("POST", "/api/v1/clusters/", {}, user="quinn")
    assert status == 201  # the slot is free again


def _token(gateway, name):
    return (gateway.workdir(name) / "run" / "api-token").read_text().strip()


def test_heartbeats_are_checked_and_bound_by_quotas(gateway):
    """A user controls their scheduler, so its heartbeats are input like any other."""
    status, body = gateway.request("POST", "/api/v1/clusters/", {}, user="henry")
    name = body["name"]
    wait_for(lambda: _status(gateway, name, "henry")["status"] == "RUNNING", what="RUNNING")
    auth = {"Authorization": f"token {_token(gateway, name)}"}
    path = f"/api/v1/clusters/{name}/heartbeat"
    for bad in (
        {"count": -1},
        {"count": True},
        {"active_workers": 5},
        {"closing_workers": [[1]]},
        {"scheduler_address": 7},
    ):
        status, reply = gateway.request("POST", path, bad, headers=auth)
        assert status == 422, (bad, reply)
    status, _ = gateway.request("POST", path, {"count": 6}, headers=auth)
    assert status == 200
    assert _status(gateway, name, "henry")["workers"]["requested"] == 2  # the user's max_workers
    status, reply = gateway.request(
        "POST", path, {"count": 1}, headers={"Authorization": "token \u00e9t\u00e9"}
    )
    assert status == 401 and reply["error"] == "unauthorized"
    gateway.request("DELETE", f"/api/v1/clusters/{name}", user="henry")
    wait_for(lambda: _status(gateway, name, "henry")["status"] == "STOPPED", what="STOPPED")


def test_concurrent_creates_respect_the_cluster_quota(gateway):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: gateway.request("POST", "/api/v1/clusters/", {}, user="ivy"), range(4)
            )
        )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 403, 403, 403]
    (name,) = [body["name"] for status, body in results if status == 201]
    gateway.request("DELETE", f"/api/v1/clusters/{name}", user="ivy")


def test_session_cookie_cannot_be_used_cross_site(gateway):
    import http.cookiejar
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    req = urllib.request.Request(
        gateway.address + "/api/v1/clusters/", headers={"Authorization": basic("judy")}
    )
    opener.open(req).read()
    assert any(c.name == "jhub-gateway-session" for c in jar)
    for headers, body in (
        ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, b"{}"),
        ({"Content-Type": "text/plain"}, b"{}"),
    ):
        req = urllib.request.Request(
            gateway.address + "/api/v1/clusters/", data=body, method="POST", headers=headers
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(req)
        assert info.value.code == 403
    status, listing = gateway.request("GET", "/api/v1/clusters/", user="judy")
    assert listing == {}
