"""The client's contract against the real service (local backend, real Traefik).

Every error the client maps is produced here by the real server, so the status,
exception class and reason asserted are the ones users meet. The fake server
(``client_fakes``) only covers shapes this service cannot be made to produce on
demand (a Kubernetes image pull failure, a proxy's 502), with the same reasons.
"""

from __future__ import annotations

import pytest

from jhub_gateway.client import (
    BasicAuth,
    Gateway,
    GatewayAuthError,
    GatewayClusterError,
    GatewayValueError,
    JupyterHubAuth,
)
from tests.gatewaytools import running_gateway

PASSWORD = "contract-pw"
MAX_BODY = 4096
CONFIG = f"""
c.SimpleAuthenticator.password = {PASSWORD!r}
c.GatewayApp.max_body_bytes = {MAX_BODY}
from jhub_gateway.options import Options, Integer, String
def _handler(opts):
    config = {{"worker_cores": opts.worker_cores}}
    if opts.environment_tag == "exit":  # a scheduler that dies at once, with a last word
        config["scheduler_cmd"] = ["python", "-c", "import sys; print('bad config'); sys.exit(3)"]
    return config
c.GatewayApp.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=4, label="Worker cores"),
    String("environment_tag", default="", label="Free text"),
    handler=_handler,
)
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("client-contract"), extra_config=CONFIG) as gw:
        yield gw


@pytest.fixture(scope="module")
def bobs_cluster(service):
    """A cluster of another user (it need not be running to be someone else's)."""
    with Gateway(service.address, auth=BasicAuth("bob", PASSWORD)) as bob:
        name = bob.submit()
        yield name
        bob.stop_cluster(name)


@pytest.fixture
async def alice(service):
    auth = BasicAuth("alice", PASSWORD)
    async with Gateway(service.address, auth=auth, asynchronous=True) as gw:
        yield gw


async def test_unknown_cluster_is_a_value_error_cluster_not_found(alice):
    with pytest.raises(GatewayValueError, match="no cluster named 'missing'") as info:
        await alice.get_cluster("missing")
    assert isinstance(info.value, ValueError)
    assert (info.value.status, info.value.reason) == (404, "cluster_not_found")
    with pytest.raises(GatewayValueError, match="no cluster named 'never-existed'") as info:
        await alice._wait_for_start("never-existed")
    assert info.value.reason == "cluster_not_found"
    with pytest.raises(GatewayValueError) as info:
        await alice.scale_cluster("missing", 1)
    assert (info.value.status, info.value.reason) == (404, "cluster_not_found")
    await alice.stop_cluster("missing")  # upstream semantics: a no-op, not an error


async def test_unknown_option_is_a_422(alice):
    with pytest.raises(GatewayValueError, match="bogus") as info:
        await alice.submit(bogus=1)
    assert (info.value.status, info.value.reason) == (422, "invalid")
    assert not [r for r in await alice.list_clusters() if r.options.get("bogus")]


async def test_out_of_range_value_is_a_422_naming_the_field(alice):
    with pytest.raises(GatewayValueError, match="worker_cores") as info:
        await alice.submit(worker_cores=99)
    assert (info.value.status, info.value.reason) == (422, "invalid")
    assert "4" in info.value.message  # the bound that was broken


@pytest.mark.parametrize(
    "auth", [BasicAuth("alice", "wrong"), JupyterHubAuth("bogus-token")], ids=["basic", "hub"]
)
async def test_bad_credentials_are_an_auth_error_unauthorized(service, auth):
    async with Gateway(service.address, auth=auth, asynchronous=True) as gw:
        with pytest.raises(GatewayAuthError) as info:
            await gw.list_clusters()
    assert isinstance(info.value, PermissionError)
    assert (info.value.status, info.value.reason) == (401, "unauthorized")
    assert info.value.message  # the server says what was wrong


async def test_another_users_cluster_is_forbidden_not_owner(alice, bobs_cluster):
    for call in (
        alice.get_cluster(bobs_cluster),
        alice.scale_cluster(bobs_cluster, 1),
        alice.stop_cluster(bobs_cluster),
    ):
        with pytest.raises(GatewayAuthError, match="belongs to another user") as info:
            await call
        assert (info.value.status, info.value.reason) == (403, "not_owner")
    assert bobs_cluster not in [r.name for r in await alice.list_clusters()]  # nor listed


async def test_scaling_a_cluster_that_is_not_running_is_a_cluster_error(alice):
    name = await alice.submit()
    await alice.stop_cluster(name)  # STOPPING or STOPPED from here on
    with pytest.raises(GatewayClusterError, match="not RUNNING") as info:
        await alice.scale_cluster(name, 1)
    assert (info.value.status, info.value.reason) == (409, "not_running")


async def test_an_oversized_body_is_a_value_error_payload_too_large(alice):
    with pytest.raises(GatewayValueError, match=f"larger than {MAX_BODY} bytes") as info:
        await alice.submit(environment_tag="x" * (MAX_BODY + 1))
    assert (info.value.status, info.value.reason) == (413, "payload_too_large")


async def test_a_failed_start_names_the_servers_reason(alice):
    name = await alice.submit(environment_tag="exit")
    with pytest.raises(GatewayClusterError, match="failed to start: FAILED") as info:
        await alice._wait_for_start(name)
    assert info.value.reason == "SchedulerExited"
    assert "bad config" in str(info.value)  # the scheduler's last log line reaches the user
    (failed,) = await alice.list_clusters(status="failed")
    assert failed.name == name and failed.reason == "SchedulerExited"
