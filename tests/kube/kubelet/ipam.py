"""Loopback address pools: pod IPs (127.1.0.0/16), ClusterIPs (127.2.0.0/16) and
LoadBalancer IPs (127.4.0.0/16; 127.3.0.0/16 is the local backend's).

Linux routes all of 127.0.0.0/8 to ``lo``, so any address in these ranges can
be bound without configuring an interface.
"""

from __future__ import annotations

import ipaddress
import random


class LoopbackPool:
    """Hands out addresses of one /16, never .0 or .255 in the last octet."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        if not self.network.is_loopback or self.network.prefixlen != 16:
            raise ValueError(f"expected a loopback /16, got {cidr}")
        self._in_use: set[str] = set()
        # Start anywhere in the range: kubelets in parallel test processes share the
        # machine's loopback, and must not hand out the same addresses.
        self._next = random.randrange(1, self.network.num_addresses - 2)

    def __contains__(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def reserve(self, ip: str) -> None:
        """Mark an address already chosen elsewhere (e.g. found in a Service)."""
        self._in_use.add(ip)

    def allocate(self) -> str:
        size = self.network.num_addresses
        for _ in range(size):
            offset, self._next = self._next, self._next % (size - 2) + 1
            ip = str(self.network.network_address + offset)
            if ip.endswith((".0", ".255")) or ip in self._in_use:
                continue
            self._in_use.add(ip)
            return ip
        raise RuntimeError(f"address pool {self.network} exhausted")

    def release(self, ip: str) -> None:
        self._in_use.discard(ip)
