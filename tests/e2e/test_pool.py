"""Pre-started schedulers on the local backend, with real processes (the service runs
as root in CI, so every hub user's pool runs under that user's uid).

What is checked is behaviour: a user's second cluster claims a pre-started process
that gets fresh credentials, no other user can claim it, the pool refills within
its bound, an empty pool or a different environment means a cold start, and a
claimed process is a scheduler like any other (guarded dashboard, compute, stop).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import basic, running_gateway
from tests.polling import wait_for

EXTRA_CONFIG = """
from jhub_gateway.options import Options, String
c.LocalBackend.uid_range = (241000, 241999)
c.LocalBackend.pool_size = 1
c.LocalBackend.pool_max_total = 2
c.GatewayApp.cluster_options = Options(
    String("flavour", default="plain"),
    handler=lambda o: {} if o.flavour == "plain" else {"environment": {"FLAVOUR": o.flavour}},
)
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("pool"), extra_config=EXTRA_CONFIG) as gw:
        yield gw


def _create(gateway, user, **options):
    status, body = gateway.request(
        "POST", "/api/v1/clusters/", {"cluster_options": options}, user=user
    )
    assert status == 201, body
    return body["name"]


def _reasons(gateway, user, name):
    status, body = gateway.request("GET", f"/api/v1/clusters/{name}/events", user=user)
    assert status == 200, body
    return [e["reason"] for e in body["events"]]


def _running(gateway, user, name):
    wait_for(
        lambda: (
            gateway.request("GET", f"/api/v1/clusters/{name}", user=user)[1]["status"] == "RUNNING"
        ),
        timeout=90,
        what=f"cluster {name} RUNNING",
    )


def _stop(gateway, user, name):
    gateway.request("DELETE", f"/api/v1/clusters/{name}", user=user)
    wait_for(
        lambda: (
            gateway.request("GET", f"/api/v1/clusters/{name}", user=user)[1]["status"] == "STOPPED"
        ),
        timeout=60,
        what=f"cluster {name} STOPPED",
    )


def _scheduler(gateway, name):
    (proc,) = [
        p
        for p in gateway.processes_under(gateway.workdir(name))
        if p.name() not in ("unshare", "sh")
    ]
    return proc


def _pooled_for(gateway, uid, flavour=None, role="scheduler"):
    """Pre-started schedulers (or workers) of one uid (and environment: see EXTRA_CONFIG)."""
    found = []
    for p in gateway.pooled_processes(role):
        try:
            if p.uids().real == uid and p.environ().get("FLAVOUR") == flavour:
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_second_cluster_claims_a_prestarted_scheduler_with_fresh_credentials(gateway):
    first = _create(gateway, "alice")
    assert "ProcessStarted" in _reasons(gateway, "alice", first)  # nothing pooled for her yet
    _running(gateway, "alice", first)
    uid = _scheduler(gateway, first).uids().real
    # a worker, cold too: her pool keeps a worker ready from now on
    status, _ = gateway.request(
        "POST", f"/api/v1/clusters/{first}/scale", {"count": 1}, user="alice"
    )
    assert status == 200
    (pooled,) = wait_for(lambda: _pooled_for(gateway, uid), what="alice's pool to fill")
    assert not (gateway.workdir(first).parent / pooled.cwd()).joinpath("api-token").exists()

    second = _create(gateway, "alice")
    reasons = _reasons(gateway, "alice", second)
    assert "ProcessClaimed" in reasons and "ProcessStarted" not in reasons
    _running(gateway, "alice", second)
    scheduler = _scheduler(gateway, second)
    assert scheduler.pid == pooled.pid and scheduler.uids().real == uid

    run = gateway.workdir(second) / "run"
    tokens = {n: (gateway.workdir(n) / "run" / "api-token").read_text() for n in (first, second)}
    certs = {
        n: (gateway.workdir(n) / "run" / "tls" / "dask.crt").read_text() for n in (first, second)
    }
    assert tokens[first] != tokens[second] and certs[first] != certs[second]
    for path in (run / "api-token", run / "tls" / "dask.pem", run / "tls" / "dask.crt"):
        st = path.stat()
        assert (st.st_uid, st.st_mode & 0o077) == (uid, 0), path

    # it is a scheduler like any other: workers join, work runs, its dashboard is guarded
    (pooled_worker,) = wait_for(
        lambda: _pooled_for(gateway, uid, role="worker"), what="a pre-started worker"
    )
    gw = Gateway(gateway.address, auth=BasicAuth("alice"))
    try:
        cluster = gw.connect(second)
        cluster.scale(1)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(1, timeout=90)
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        # the worker was the pre-started one, with its own copy of the credentials
        worker_run = Path(pooled_worker.cwd())
        assert (worker_run / "tls" / "dask.pem").read_text() == (
            run / "tls" / "dask.pem"
        ).read_text()
        assert worker_run.stat().st_uid == uid
        (address,) = client.scheduler_info()["workers"]
        assert pooled_worker.is_running()
        assert any(
            c.laddr.port == int(address.rsplit(":", 1)[1])
            for c in pooled_worker.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        )
        client.close()
        url = gateway.address + f"/clusters/{second}/status"
        for headers, code in (({}, 401), ({"Authorization": basic("bob")}, 403)):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30)
            assert info.value.code == code
        req = urllib.request.Request(url, headers={"Authorization": basic("alice")})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
    finally:
        gw.close()

    # the pool refills; the claimed process never goes back to it
    (refill,) = wait_for(lambda: _pooled_for(gateway, uid), what="alice's pool to refill")
    assert refill.pid != pooled.pid
    _stop(gateway, "alice", second)
    assert not psutil.pid_exists(pooled.pid) or pooled.status() == psutil.STATUS_ZOMBIE
    assert not worker_run.exists()  # a stop removes every copy of the credentials
    assert [p.pid for p in _pooled_for(gateway, uid)] == [refill.pid]
    _stop(gateway, "alice", first)


def test_other_users_never_claim_someone_elses_pool(gateway):
    alice_pooled = wait_for(lambda: gateway.pooled_processes(), what="a pre-started scheduler")
    alice = {p.pid: p.uids().real for p in alice_pooled}
    name = _create(gateway, "bob")
    assert "ProcessStarted" in _reasons(gateway, "bob", name)
    _running(gateway, "bob", name)
    scheduler = _scheduler(gateway, name)
    assert scheduler.pid not in alice and scheduler.uids().real not in alice.values()
    _stop(gateway, "bob", name)


def test_the_pool_bound_holds_over_all_users(gateway):
    names = [(user, _create(gateway, user)) for user in ("carol", "dave", "erin")]
    for user, name in names:
        _running(gateway, user, name)

    def pooled() -> int:
        return len(gateway.pooled_processes("scheduler") + gateway.pooled_processes("worker"))

    wait_for(lambda: pooled() == 2, what="the pool to reach its bound")
    assert pooled() == 2
    for user, name in names:
        _stop(gateway, user, name)


def test_an_empty_pool_or_another_environment_starts_cold(gateway):
    first = _create(gateway, "frank")
    _running(gateway, "frank", first)
    uid = _scheduler(gateway, first).uids().real
    wait_for(lambda: _pooled_for(gateway, uid), what="frank's pool to fill")
    # another environment: the pooled interpreter was started with a different one
    spicy = _create(gateway, "frank", flavour="spicy")
    assert "ProcessStarted" in _reasons(gateway, "frank", spicy)
    assert _pooled_for(gateway, uid)  # still frank's, unclaimed
    # asking for that environment once is demand for it: one is kept from now on
    wait_for(lambda: _pooled_for(gateway, uid, "spicy"), what="a pool of the other environment")
    # a pooled process that died unclaimed is dropped, and the empty pool (not refilled
    # at once after a failure) means a cold start
    (pooled,) = _pooled_for(gateway, uid)
    pool_dir = Path(pooled.cwd()).parent
    mark = len(gateway.log_text())
    pooled.kill()
    # gone once its sandbox has exited too: that is when the service learns of it
    wait_for(lambda: not gateway.processes_under(pool_dir), what="the dead process's sandbox")
    wait_for(lambda: "exited unclaimed" in gateway.log_text()[mark:], what="the pool to drop it")
    burst = [_create(gateway, "frank")]
    assert "ProcessStarted" in _reasons(gateway, "frank", burst[0])
    for name in [*burst, spicy]:
        _running(gateway, "frank", name)
    assert _scheduler(gateway, spicy).environ().get("FLAVOUR") == "spicy"
    for name in [first, spicy, *burst]:
        _stop(gateway, "frank", name)


def test_stopping_the_service_ends_unclaimed_processes_only(gateway):
    name = _create(gateway, "gina")
    _running(gateway, "gina", name)
    wait_for(lambda: gateway.pooled_processes(), what="a pre-started scheduler")
    pooled = gateway.pooled_processes()
    scheduler = _scheduler(gateway, name)
    gateway.stop()
    try:
        psutil.wait_procs(pooled, timeout=30)
        assert not any(p.is_running() for p in pooled)
        assert scheduler.is_running()  # clusters outlive the service
    finally:
        gateway.start()
    _stop(gateway, "gina", name)


def test_without_isolation_one_pool_is_ready_for_everyone_from_the_start(tmp_path):
    config = "c.LocalBackend.isolation = 'off'\n"
    with running_gateway(tmp_path, extra_config=config) as gw:
        wait_for(lambda: gw.pooled_processes(), what="the shared pool at start")
        first = _create(gw, "alice")  # nobody's first cluster is cold
        assert "ProcessClaimed" in _reasons(gw, "alice", first)
        _running(gw, "alice", first)
        wait_for(lambda: gw.pooled_processes(), what="the shared pool to refill")
        second = _create(gw, "bob")
        assert "ProcessClaimed" in _reasons(gw, "bob", second)
        _running(gw, "bob", second)
        for user, name in (("alice", first), ("bob", second)):
            _stop(gw, user, name)


def test_a_claimed_process_that_dies_before_reporting_in_is_replaced_cold(gateway):
    first = _create(gateway, "hana")
    _running(gateway, "hana", first)
    uid = _scheduler(gateway, first).uids().real
    (pooled,) = wait_for(lambda: _pooled_for(gateway, uid), what="hana's pool to fill")
    pooled.suspend()  # alive, so it is claimed, but it never reads the claim
    second = _create(gateway, "hana")
    assert "ProcessClaimed" in _reasons(gateway, "hana", second)
    pooled.kill()
    _running(gateway, "hana", second)
    reasons = _reasons(gateway, "hana", second)
    assert reasons.index("ClaimedProcessExited") < reasons.index("ProcessStarted")
    assert _scheduler(gateway, second).pid != pooled.pid
    for name in (first, second):
        _stop(gateway, "hana", name)
