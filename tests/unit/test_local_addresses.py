"""Per-cluster loopback hosts: the pool, and which heartbeat addresses are believed."""

from __future__ import annotations

import ipaddress
import random

import pytest
from traitlets import TraitError

from jhub_gateway.hub_service.backends.local import addresses
from jhub_gateway.hub_service.backends.local.config import LocalBackendConfig

NET = ipaddress.IPv4Network("127.3.0.0/16")
HOST = "127.3.4.5"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("127.3.0.1/16", "not an IPv4 network"),  # host bits set
        ("10.0.0.0/8", "not inside the loopback network"),
        ("127.0.0.0/31", "fewer than 2 usable hosts"),
        ("::1/128", "not an IPv4 network"),
        ("loopback", "not an IPv4 network"),
    ],
)
def test_the_cluster_network_is_validated(value, message):
    with pytest.raises(ValueError, match=message):
        addresses.parse_network(value)
    with pytest.raises(TraitError, match="LocalBackend.cluster_network"):
        LocalBackendConfig(cluster_network=value)


def test_allocated_hosts_are_usable_hosts_of_the_network_and_not_taken():
    rng = random.Random(7)
    taken: set[str] = set()
    for _ in range(200):
        host = addresses.allocate_host(NET, taken, rng)
        address = ipaddress.IPv4Address(host)
        assert address in NET and address not in (NET.network_address, NET.broadcast_address)
        assert host not in taken
        taken.add(host)


def test_a_released_host_is_not_handed_straight_back():
    rng = random.Random(1)
    taken = {addresses.allocate_host(NET, set(), rng) for _ in range(10)}
    released = sorted(taken)[0]
    taken.discard(released)
    following = [addresses.allocate_host(NET, taken, rng) for _ in range(20)]
    assert released not in following


def test_a_nearly_full_pool_is_searched_exhaustively_then_refused():
    net = ipaddress.IPv4Network("127.9.0.0/29")  # 6 usable hosts
    hosts = [str(h) for h in net.hosts()]
    assert addresses.allocate_host(net, hosts[:-1]) == hosts[-1]
    assert addresses.allocate_host(net, hosts[1:]) == hosts[0]  # a freed host is reused when needed
    with pytest.raises(RuntimeError, match="every host of the cluster network 127.9.0.0/29"):
        addresses.allocate_host(net, hosts)


def _beat(**fields: object) -> dict[str, object]:
    base = {
        "scheduler_address": f"tls://{HOST}:40001",
        "dashboard_address": f"http://{HOST}:40002",
        "api_address": f"http://{HOST}:40003",
    }
    base.update(fields)
    return base


def test_addresses_on_the_cluster_host_are_believed():
    assert addresses.check_heartbeat_addresses(_beat(), HOST) is None
    assert addresses.check_heartbeat_addresses(_beat(dashboard_address=""), HOST) is None
    assert addresses.check_heartbeat_addresses({}, HOST) is None  # nothing claimed yet


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"scheduler_address": "tls://127.3.4.6:40001"},
            "scheduler_address 'tls://127.3.4.6:40001' is not on the cluster's host",
        ),
        ({"api_address": "http://127.0.0.1:8000"}, "api_address 'http://127.0.0.1:8000' is not on"),
        ({"dashboard_address": "http://169.254.169.254:80"}, "dashboard_address"),
        ({"scheduler_address": f"tcp://{HOST}:40001"}, "is not of the form tls://HOST:PORT"),
        ({"api_address": f"https://{HOST}:40003"}, "is not of the form http://HOST:PORT"),
        ({"api_address": f"http://{HOST}:0"}, "is not of the form"),
        ({"api_address": f"http://{HOST}:65536"}, "is not of the form"),
        ({"api_address": f"http://{HOST}"}, "is not of the form"),
        ({"api_address": f"http://{HOST}:80x"}, "is not of the form"),
        ({"api_address": ["http://x:1"]}, "api_address is not an address"),
        ({"api_address": "http://" + "a" * 300 + ":1"}, "api_address is not an address"),
        ({"api_address": f"http://evil@{HOST}:40003"}, "is not on the cluster's host"),
    ],
)
def test_other_addresses_are_refused_naming_the_field(fields, message):
    problem = addresses.check_heartbeat_addresses(_beat(**fields), HOST)
    assert problem is not None and message in problem
