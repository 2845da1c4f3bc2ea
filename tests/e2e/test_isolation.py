"""The local backend as an isolation boundary, tested as an attacker would.

A real service (running as root, as CI does) with real clusters for alice and
bob. A task in alice's cluster goes looking for secrets and tries to kill what is
not hers; the test then checks that nothing it brought back holds a secret and
that everything it aimed at still runs. Its findings are printed (run with ``-s``
or ``-rP`` to read them).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

import psutil
import pytest

from jhub_gateway import Gateway
from jhub_gateway.client import BasicAuth
from tests.gatewaytools import running_gateway
from tests.polling import wait_for

from . import isolation_attack


def _payload():
    """The attack as functions of a module no process can import, so cloudpickle sends
    their code by value (the workers cannot import tests/)."""
    namespace = {"__name__": "isolation_attack_payload"}
    source = Path(isolation_attack.__file__).read_text()
    exec(compile(source, isolation_attack.__file__, "exec"), namespace)
    return namespace["attack"]


EXTRA_CONFIG = """
c.LocalBackend.uid_range = (240000, 240999)
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    # a secret in the service's environment, like the hub's JUPYTERHUB_API_TOKEN
    api_token = "hubtoken-" + secrets.token_hex(16)
    saved = os.environ.get("JUPYTERHUB_API_TOKEN")
    os.environ["JUPYTERHUB_API_TOKEN"] = api_token
    try:
        with running_gateway(tmp_path_factory.mktemp("isolation"), extra_config=EXTRA_CONFIG) as gw:
            gw.hub_api_token = api_token
            yield gw
    finally:
        if saved is None:
            os.environ.pop("JUPYTERHUB_API_TOKEN", None)
        else:
            os.environ["JUPYTERHUB_API_TOKEN"] = saved


def _run_dir(gateway, name):
    return gateway.workdir(name) / "run"


def _processes(gateway, name):
    """The dropped (python) processes of one cluster, not their root-owned unshare."""
    return [p for p in gateway.processes_under(gateway.workdir(name)) if p.name() != "unshare"]


def _internal_addresses(gateway, name):
    """Where the cluster really listens (the API reports the public gateway:// address)."""
    with sqlite3.connect(gateway.data_dir / "state.sqlite") as db:
        row = db.execute(
            "SELECT scheduler_address, api_address FROM clusters WHERE name = ?", (name,)
        ).fetchone()
    return row[0].split("://")[-1], row[1].split("://")[-1]


def _dashboard_address(gateway, name):
    with sqlite3.connect(gateway.data_dir / "state.sqlite") as db:
        row = db.execute(
            "SELECT dashboard_address FROM clusters WHERE name = ?", (name,)
        ).fetchone()
    return row[0].split("://")[-1]


def _listening(pids):
    """host:port of every TCP socket these processes listen on."""
    found = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections("tcp")
        except psutil.NoSuchProcess:
            continue
        found |= {f"{c.laddr.ip}:{c.laddr.port}" for c in conns if c.status == psutil.CONN_LISTEN}
    return found


# what distributed serves on a scheduler's (or worker's) HTTP port
DASHBOARD_PATHS = [
    "/status",
    "/individual-plots.json",
    "/info/main/workers.html",
    "/json/identity.json",
    "/metrics",
    "/health",
    "/sitemap.json",
]


def _status(gateway, name, user):
    return gateway.request("GET", f"/api/v1/clusters/{name}", user=user)[1]


@pytest.fixture(scope="module")
def clusters(gateway):
    made = {}
    gateways = []
    for user in ("alice", "bob"):
        gw = Gateway(gateway.address, auth=BasicAuth(user))
        cluster = gw.new_cluster(shutdown_on_close=False)
        cluster.scale(1)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(1, timeout=90)
        made[user] = (cluster, client)
        gateways.append(gw)
    yield made
    for cluster, client in made.values():
        client.close()
        cluster.shutdown()
    for gw in gateways:
        gw.close()


def _secrets(gateway, bob_name):
    run = _run_dir(gateway, bob_name)
    key_lines = (run / "tls" / "dask.pem").read_text().splitlines()
    return {
        "service JUPYTERHUB_API_TOKEN": gateway.hub_api_token,
        "Fernet key": (gateway.data_dir / "encryption.key").read_text().strip(),
        "bob's cluster token": (run / "api-token").read_text().strip(),
        "bob's TLS key": max(key_lines, key=len),  # a line of the base64 body
    }


def test_attack_from_alice_cluster_finds_no_secret_and_kills_nothing(gateway, clusters):
    alice, alice_client = clusters["alice"]
    bob, _ = clusters["bob"]
    bob_procs = gateway.processes_under(gateway.workdir(bob.name))
    bob_uid = next(iter(p.uids().real for p in _processes(gateway, bob.name)))
    # bob's next cluster: a pre-started scheduler under his uid, waiting for a claim
    bob_pooled = wait_for(
        lambda: [p for p in gateway.pooled_processes() if p.uids().real == bob_uid],
        what="a pre-started scheduler for bob",
    )
    targets = {
        "bob's worker and scheduler": [p.pid for p in bob_procs],
        "bob's pre-started scheduler": [p.pid for p in bob_pooled],
        "the service": [gateway.proc.pid],
        "traefik": [p.pid for p in gateway.processes_under(gateway.data_dir / "traefik")],
    }
    paths = {
        "data dir": str(gateway.data_dir),
        "store": str(gateway.data_dir / "state.sqlite"),
        "key file": str(gateway.data_dir / "encryption.key"),
        "bob's run dir": str(_run_dir(gateway, bob.name)),
        "bob's token file": str(_run_dir(gateway, bob.name) / "api-token"),
        "bob's TLS key file": str(_run_dir(gateway, bob.name) / "tls" / "dask.pem"),
        "bob's pre-started scheduler's run dir": bob_pooled[0].cwd(),
        "service's /proc": f"/proc/{gateway.proc.pid}/environ",
    }
    bob_scheduler = _status(gateway, bob.name, "bob")
    bob_dashboard = _dashboard_address(gateway, bob.name)
    probes = {"bob's scheduler": _internal_addresses(gateway, bob.name)[0]}
    before = {p.pid: p.create_time() for p in [*bob_procs, *bob_pooled]}
    # everything a scheduler's HTTP server serves, plus bob's dashboard behind Traefik
    dashboard_paths = [*DASHBOARD_PATHS, f"/clusters/{bob.name}/status"]
    found = alice_client.submit(
        _payload(), paths, targets, probes, dashboard_paths, pure=False
    ).result(timeout=120)
    assert bob_scheduler["status"] == "RUNNING"

    print("\n=== attack from a task in alice's cluster ===")
    print(
        f"ran as uid {found['uid']}, pid {found['pid']} (its PID namespace shows "
        f"{len(found['visible_pids'])} process(es): {found['visible_pids']})"
    )
    for what, outcome in found["reads"].items():
        print(f"read {what}: {outcome}")
    print(
        f"/proc/*/environ readable: {found['environ_readable']}, "
        f"/proc/*/cmdline readable: {found['cmdline_readable']}"
    )
    for what, outcome in found["kills"].items():
        print(f"kill {what}: {outcome}")
    for what, outcome in found["probes"].items():
        print(f"connect to {what}: {outcome}")
    dashboards = found["dashboards"]
    ports = sorted({d["address"] for d in dashboards})
    print(f"loopback ports listed by /proc/net/tcp: {len(ports)}")
    for address in ports:
        answers = [f"{d['path']} {d['status']}" for d in dashboards if d["address"] == address]
        print(f"  {address}: {', '.join(answers)}")
    print(f"bytes brought back: {len(found['loot'])}")

    loot = found["loot"]
    leaked = [name for name, value in _secrets(gateway, bob.name).items() if value in loot]
    print(f"secrets among them: {leaked or 'none'}")
    assert leaked == []
    assert found["uid"] != 0 and found["pid"] == 1
    assert all(not r.startswith("read") for r in found["reads"].values()), found["reads"]
    assert all("killed" not in k and k != "sent" for k in found["kills"].values()), found["kills"]
    assert all("accepted" not in v for v in found["probes"].values()), found["probes"]
    # bob's scheduler ports were among those scanned, and no port of this gateway (the
    # service, Traefik, both clusters) served a page; the machine's other loopback
    # servers are not ours to judge
    bob_ports = {a for a in _internal_addresses(gateway, bob.name)} | {bob_dashboard}
    assert bob_ports <= set(ports)
    ours = _listening(
        [gateway.proc.pid, *(p.pid for p in gateway.processes_under(gateway.data_dir))]
    )
    assert bob_ports <= ours
    served = [
        (d["address"], d["path"])
        for d in dashboards
        if d["address"] in ours and d["status"] == 200 and d["bytes"]
    ]
    assert served == [], served
    # everything aimed at still runs
    for pid, created in before.items():
        assert psutil.Process(pid).create_time() == created
    assert gateway.proc.poll() is None
    assert _status(gateway, bob.name, "bob")["status"] == "RUNNING"


def test_each_user_has_a_uid_of_their_own(gateway, clusters):
    uids = {
        user: {p.uids().real for p in _processes(gateway, cluster.name)}
        for user, (cluster, _) in clusters.items()
    }
    print(f"\nuids: service 0, alice {uids['alice']}, bob {uids['bob']}")
    assert len(uids["alice"]) == len(uids["bob"]) == 1
    assert uids["alice"] != uids["bob"]
    assert 0 not in uids["alice"] | uids["bob"]
    assert uids["alice"] <= set(range(240000, 241000))


def test_service_command_line_and_credentials_files(gateway, clusters):
    cmdline = Path(f"/proc/{gateway.proc.pid}/cmdline").read_bytes().decode()
    bob, _ = clusters["bob"]
    for name, value in _secrets(gateway, bob.name).items():
        assert value not in cmdline, name
    run = _run_dir(gateway, bob.name)
    bob_uid = next(iter(p.uids().real for p in _processes(gateway, bob.name)))
    for path in (run, run / "api-token", run / "tls" / "dask.pem"):
        st = path.stat()
        assert (st.st_uid, st.st_mode & 0o077) == (bob_uid, 0), path
    assert gateway.data_dir.stat().st_mode & 0o077 == 0


def test_forged_heartbeat_is_rejected_and_changes_no_route(gateway, clusters):
    alice, _ = clusters["alice"]
    bob, _ = clusters["bob"]
    token = (_run_dir(gateway, alice.name) / "api-token").read_text().strip()
    routes = gateway.data_dir / "traefik" / "routes" / "routes.yml"
    before_routes = routes.read_text()
    before = _status(gateway, alice.name, "alice")
    bob_api = _internal_addresses(gateway, bob.name)[1]
    forged = {
        "scheduler_address": "tls://127.0.0.1:8786",
        "dashboard_address": "http://169.254.169.254:80",
        "api_address": f"http://{bob_api}",
        "count": 1,
    }
    for field in ("scheduler_address", "dashboard_address", "api_address"):
        body = {field: forged[field], "count": 1}
        status, reply = gateway.request(
            "POST",
            f"/api/v1/clusters/{alice.name}/heartbeat",
            body,
            headers={"Authorization": f"token {token}"},
        )
        print(f"\nforged {field}={forged[field]!r}: {status} {reply}")
        assert status == 422 and reply["error"] == "invalid_heartbeat_address", reply
    assert routes.read_text() == before_routes
    after = _status(gateway, alice.name, "alice")
    for key in ("scheduler_address", "dashboard_address"):
        assert after.get(key) == before.get(key)
    assert "rejected a heartbeat of cluster" in gateway.log_text()


def test_cluster_hosts_differ_and_ports_stay_reachable_only_over_tls(gateway, clusters):
    hosts = {
        user: next(
            c.laddr.ip
            for p in _processes(gateway, cluster.name)
            for c in p.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        )
        for user, (cluster, _) in clusters.items()
    }
    print(f"\nloopback hosts: {hosts}")
    assert hosts["alice"] != hosts["bob"]
    assert all(h.startswith("127.3.") for h in hosts.values())


def test_restarted_service_readopts_isolated_clusters(gateway, clusters):
    alice, _ = clusters["alice"]
    pids = {p.pid: p.uids().real for p in _processes(gateway, alice.name)}
    gateway.stop()
    assert all(psutil.pid_exists(pid) for pid in pids)
    gateway.start()
    assert _status(gateway, alice.name, "alice")["status"] == "RUNNING"
    with Gateway(gateway.address, auth=BasicAuth("alice")) as gw:
        again = gw.connect(alice.name)
        client = again.get_client(set_as_default=False)
        assert client.submit(os.getuid, pure=False).result(timeout=60) in set(pids.values())
        client.close()
        # the same hub user keeps the same uid after the restart
        second = gw.new_cluster()
        uids = wait_for(
            lambda: {p.uids().real for p in _processes(gateway, second.name)}, what="scheduler"
        )
        assert uids == set(pids.values())
        second.shutdown()
    # a re-adopted (no longer a child) isolated process can still be stopped
    status, _ = gateway.request("DELETE", f"/api/v1/clusters/{alice.name}", user="alice")
    assert status == 204
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), what="alice's processes to end")
    assert not _run_dir(gateway, alice.name).exists()  # credentials do not outlive the cluster
