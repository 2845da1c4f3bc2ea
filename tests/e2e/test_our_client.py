"""Our client end to end: Traefik, local clusters, dashboards, isolation, bad input."""

from __future__ import annotations

import urllib.request

import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth, GatewayAuthError, GatewayValueError
from tests.gatewaytools import basic
from tests.polling import wait_for


@pytest.fixture(scope="module")
def running(gateway):
    """One RUNNING cluster of alice's, shared by the read-only tests below."""
    gw = Gateway(gateway.address, auth=BasicAuth("alice"))
    cluster = gw.new_cluster(worker_cores=1, shutdown_on_close=True)
    yield cluster
    cluster.shutdown()
    gw.close()


def test_lifecycle_create_scale_compute_stop(gateway):
    with Gateway(gateway.address, auth=BasicAuth("carol")) as gw:
        cluster = gw.new_cluster()
        assert cluster.status == "running"
        cluster.scale(2)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(2, timeout=90)
        assert sum(client.gather(client.map(lambda x: x * 2, range(10)))) == 90
        # workers without a nanny still hash strings alike (shuffles rely on it)
        assert len(set(client.run(lambda: hash("jhub-gateway")).values())) == 1
        cluster.scale(1)
        wait_for(lambda: len(client.scheduler_info()["workers"]) == 1, what="scale down to 1")
        client.close()
        name = cluster.name
        cluster.shutdown()
        report = gw.get_cluster(name)
        assert report.status.name == "STOPPED"
    status, events = gateway.request("GET", f"/api/v1/clusters/{name}/events", user="carol")
    assert status == 200
    reasons = [e["reason"] for e in events["events"]]
    assert reasons[0] == "Created" and "Running" in reasons and reasons[-1] == "StopRequested"


def test_dashboard_through_traefik_needs_the_owner(gateway, running):
    url = gateway.address + f"/clusters/{running.name}/status"
    req = urllib.request.Request(url, headers={"Authorization": basic("alice")})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        assert b"<html" in resp.read(2000).lower()
    for headers, code in (({}, 401), ({"Authorization": basic("mallory")}, 403)):
        req = urllib.request.Request(url, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        with info.value as refused:
            assert refused.code == code
    assert running.dashboard_link.endswith(f"/clusters/{running.name}/status")


def test_dashboard_auth_is_not_public(gateway, running):
    """The forward-auth endpoint answers Traefik on the internal address only: through
    the public one, even the owner asking with a made-up X-Forwarded-Uri gets Traefik's
    404 (no dashboard credential), while the dashboard itself still works for them."""
    dashboard = f"/clusters/{running.name}/status"
    owner = {"Authorization": basic("alice"), "X-Forwarded-Uri": dashboard}
    for path in (
        "/api/v1/dashboard-auth",
        "/api/v1/dashboard-auth/",
        "/api/v1/dashboard-auth?x=1",
        "/api/v1/dashboard%2Dauth",
    ):
        req = urllib.request.Request(gateway.address + path, headers=owner)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        with info.value as refused:
            assert refused.code == 404, path
            assert "x-jhub-gateway-dashboard-credential" not in {k.lower() for k in refused.headers}
            assert b"credential" not in refused.read()
    # the rest of the API under the same prefix is still public
    assert gateway.request("GET", "/api/v1/clusters/", user="alice")[0] == 200
    req = urllib.request.Request(
        gateway.address + dashboard, headers={"Authorization": basic("alice")}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def test_the_scheduler_never_sees_the_viewers_credentials(gateway, running):
    """A scheduler runs its user's code; whoever opens the dashboard (an admin, say)
    must not hand it their Authorization header or cookies."""

    # Defined here, so they travel to the scheduler by value (it cannot import tests).
    def spy(dask_scheduler):
        guard = dask_scheduler.http_server.request_callback
        seen = dask_scheduler.jhub_test_seen_headers = []
        original = guard.find_handler

        def find_handler(request, **kwargs):
            seen.append({k.lower(): v for k, v in request.headers.items()})
            return original(request, **kwargs)

        guard.find_handler = find_handler

    def seen_headers(dask_scheduler):
        del dask_scheduler.http_server.request_callback.find_handler  # back to the class's
        return dask_scheduler.jhub_test_seen_headers

    client = running.get_client(set_as_default=False)
    try:
        client.run_on_scheduler(spy)
        url = gateway.address + f"/clusters/{running.name}/status"
        headers = {"Authorization": basic("alice"), "Cookie": "jupyterhub-session-id=s3cret"}
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30):
            pass
        seen = client.run_on_scheduler(seen_headers)
    finally:
        client.close()
    assert seen, "the dashboard request reached the scheduler"
    for request_headers in seen:
        assert "authorization" not in request_headers and "cookie" not in request_headers
        assert "x-jhub-gateway-dashboard-credential" in request_headers


def test_users_see_and_touch_only_their_own_clusters(gateway, running):
    with Gateway(gateway.address, auth=BasicAuth("mallory")) as gw:
        assert gw.list_clusters() == []
        with pytest.raises(GatewayAuthError, match="another user"):
            gw.get_cluster(running.name)
        with pytest.raises(GatewayAuthError):
            gw.scale_cluster(running.name, 3)
        with pytest.raises(GatewayAuthError):
            gw.stop_cluster(running.name)
    status, body = gateway.request("GET", f"/api/v1/clusters/{running.name}", user="alice")
    assert status == 200 and body["status"] == "RUNNING"


def test_options_validation_errors_are_precise(gateway):
    cases = [
        ({"cluster_options": {"worker_cores": 99}}, "worker_cores"),
        ({"cluster_options": {"gpus": 1}}, "gpus"),
        ({"cluster_options": {"worker_cores": "two"}}, "worker_cores"),
        ({"cluster_options": []}, "cluster_options"),
        ({"cluster_options": {}, "extra": 1}, "extra"),
    ]
    for body, word in cases:
        status, reply = gateway.request("POST", "/api/v1/clusters/", body, user="dave")
        assert status == 422, (body, reply)
        assert reply["error"] == "invalid" and word in reply["message"]
    status, listing = gateway.request(
        "GET", "/api/v1/clusters/?status=pending,running,stopped,failed", user="dave"
    )
    assert status == 200 and listing == {}
    with Gateway(gateway.address, auth=BasicAuth("dave")) as gw:
        with pytest.raises(GatewayValueError, match="worker_cores"):
            gw.submit(cluster_options={"worker_cores": 0})


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code", "error"),
    [
        ("POST", "/api/v1/clusters/", {"raw": b"{not json"}, 400, "malformed_json"),
        ("POST", "/api/v1/clusters/", {"raw": b"[1, 2]"}, 400, "malformed_json"),
        ("POST", "/api/v1/clusters/", {"raw": b"x" * (2 * 1024 * 1024)}, 413, "payload_too_large"),
        ("GET", "/api/v1/clusters/", {"headers": {"Authorization": "Basic"}}, 401, "unauthorized"),
        (
            "GET",
            "/api/v1/clusters/",
            {"headers": {"Authorization": "garbage!!"}},
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/api/v1/clusters/",
            {"headers": {"Authorization": "Basic %%%"}},
            401,
            "unauthorized",
        ),
        ("GET", "/api/v1/clusters/nosuchcluster", {}, 404, "cluster_not_found"),
        ("GET", "/api/v1/clusters/nosuchcluster?wait", {}, 404, "cluster_not_found"),
        ("GET", "/api/v1/clusters/?status=sleeping", {}, 422, "invalid"),
        (
            "POST",
            "/api/v1/clusters/nosuchcluster/scale",
            {"body": {"count": 1}},
            404,
            "cluster_not_found",
        ),
        ("GET", "/api/v1/nothing-here", {}, 404, "not_found"),
    ],
)
def test_bad_input_gets_a_precise_4xx(gateway, method, path, kwargs, code, error):
    user = None if "headers" in kwargs else "erin"
    status, body = gateway.request(method, path, user=user, **kwargs)
    assert status == code, body
    assert body["error"] == error and body["message"]


def test_bad_scale_requests(gateway, running):
    for payload in ({"count": -1}, {"count": "2"}, {"count": True}, {}, {"count": 1, "x": 2}):
        status, body = gateway.request(
            "POST", f"/api/v1/clusters/{running.name}/scale", payload, user="alice"
        )
        assert status == 422, (payload, body)
    status, body = gateway.request(
        "POST", f"/api/v1/clusters/{running.name}/adapt", {"minimum": 3, "maximum": 1}, user="alice"
    )
    assert status == 422 and "minimum" in body["message"]


def test_health_and_openapi(gateway):
    status, health = gateway.request("GET", "/api/health")
    assert status == 200 and health["checks"]["proxy"]["ok"] and health["checks"]["store"]["ok"]
    status, doc = gateway.request("GET", "/api/openapi.json")
    assert status == 200 and "/api/v1/clusters/{name}/events" in doc["paths"]
    status, me = gateway.request("GET", "/api/v1/users/me", user="alice")
    assert status == 200 and me["name"] == "alice" and me["admin"] is False


def test_no_secret_reaches_a_log(gateway, running):
    """Cluster tokens and private keys never appear in the service's or the clusters' logs."""
    clusters_dir = gateway.data_dir / "clusters"
    tokens = [p.read_text().strip() for p in clusters_dir.glob("*/run/api-token")]
    keys = [p.read_text().strip() for p in clusters_dir.glob("*/run/tls/dask.pem")]
    assert tokens and keys
    logs = [gateway.log_text()] + [
        p.read_text(errors="replace") for p in clusters_dir.glob("*/*.log")
    ]
    for secret in tokens + [k.splitlines()[1] for k in keys]:
        assert not any(secret in log for log in logs)
