"""Per-cluster loopback hosts, and checking the addresses a heartbeat reports (pure).

A heartbeat comes from the scheduler, which runs the cluster user's code, so the
addresses it reports are claims. Each cluster gets a loopback host of its own
(Linux routes all of 127.0.0.0/8 to ``lo``) that its scheduler and workers bind
to; a heartbeat is only believed when every address it reports is on that host.
Traefik routes and ``/api/comm`` calls therefore never lead anywhere the backend
did not assign.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Collection

#: the host of clusters started before per-cluster hosts existed
LEGACY_HOST = "127.0.0.1"

_SCHEMES = {"scheduler_address": "tls", "dashboard_address": "http", "api_address": "http"}


def parse_network(value: str) -> ipaddress.IPv4Network:
    """The configured cluster network; ``ValueError`` says what is wrong with it."""
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 network such as 127.3.0.0/16 ({exc})") from None
    if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        raise ValueError(f"{value} is not inside the loopback network 127.0.0.0/8")
    if net.num_addresses < 4:
        raise ValueError(f"{value} has fewer than 2 usable hosts; use a prefix of /30 or shorter")
    return net


def allocate_host(
    network: ipaddress.IPv4Network, taken: Collection[str], rng: random.Random | None = None
) -> str:
    """A host of ``network`` that no cluster in ``taken`` uses; ``RuntimeError`` if full.

    Random rather than sequential, so a host freed by a stopped cluster is not
    handed straight to the next one (a leftover listener would meet new traffic).
    """
    rng = rng or random.SystemRandom()
    first, last = int(network.network_address) + 1, int(network.broadcast_address) - 1
    size = last - first + 1
    if len(taken) < size // 2:
        for _ in range(64):
            host = str(ipaddress.IPv4Address(rng.randint(first, last)))
            if host not in taken:
                return host
    for value in range(first, last + 1):  # nearly full: search exhaustively
        host = str(ipaddress.IPv4Address(value))
        if host not in taken:
            return host
    raise RuntimeError(f"every host of the cluster network {network} is in use")


def _split(address: str, scheme: str) -> tuple[str, int] | None:
    prefix = scheme + "://"
    if not address.startswith(prefix):
        return None
    host, sep, port = address[len(prefix) :].rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def check_heartbeat_addresses(heartbeat: dict, host: str) -> str | None:
    """Why the heartbeat's addresses cannot be believed for a cluster on ``host``; None if fine.

    ``scheduler_address`` must be ``tls://HOST:PORT``; ``dashboard_address`` and
    ``api_address`` ``http://HOST:PORT`` or empty. The message names the field, not
    the reported value's host only, so the log line says exactly what was claimed.
    """
    for field, scheme in _SCHEMES.items():
        value = heartbeat.get(field) or ""
        if not value:
            continue
        if not isinstance(value, str) or len(value) > 256:
            return f"{field} is not an address"
        parsed = _split(value, scheme)
        if parsed is None:
            return f"{field} {value!r} is not of the form {scheme}://HOST:PORT"
        if parsed[0] != host:
            return f"{field} {value!r} is not on the cluster's host {host}"
    return None
