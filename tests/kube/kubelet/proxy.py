"""kube-proxy + cluster DNS stand-in: loopback ClusterIPs forwarding TCP to endpoints.

``type: LoadBalancer`` Services also get an external address (the part a cloud's
load-balancer controller plays): a loopback IP from 127.4.0.0/16 written to
``status.loadBalancer.ingress[0].ip``, listening on the Service's ports. NodePort and
LoadBalancer Services get ``nodePort``s (30000-32767) served on the node address.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable

from .api import JSON_PATCH, ApiError, RawApi
from .endpoints import SERVICE_LABEL
from .ipam import LoopbackPool

log = logging.getLogger(__name__)

Cache = dict[tuple[str, str], dict]
CONNECT_TIMEOUT = 5.0
NODE_IP = "127.0.0.1"
NODE_PORTS = range(30000, 32768)


def _ready_endpoints(slices: Cache, ns: str, name: str, port_name: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for (sns, _), sl in slices.items():
        if sns != ns or (sl["metadata"].get("labels") or {}).get(SERVICE_LABEL) != name:
            continue
        ports = [p for p in sl.get("ports") or [] if (p.get("name") or "") == port_name]
        if not ports or ports[0].get("port") is None:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True) is not False:
                out.extend((addr, int(ports[0]["port"])) for addr in ep.get("addresses", []))
    return sorted(out)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class KubeProxy:
    """Gives Services loopback ClusterIPs and forwards ClusterIP:port to endpoints."""

    def __init__(
        self, api: RawApi, services: Callable[[], Cache], slices: Callable[[], Cache]
    ) -> None:
        self.api = api
        self.services = services
        self.slices = slices
        self.pool = LoopbackPool("127.2.0.0/16")
        self.ips: dict[tuple[str, str], str] = {}
        self.lb_pool = LoopbackPool("127.4.0.0/16")
        self.lb_ips: dict[tuple[str, str], str] = {}
        self._listeners: dict[tuple[str, str], dict[tuple[str, int], asyncio.Server]] = {}
        self._rr = itertools.count()
        self._conns: set[asyncio.Task] = set()
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()

    # -- addresses -------------------------------------------------------------
    def cluster_ip(self, key: tuple[str, str], svc: dict | None) -> str:
        """Loopback address for a Service (allocating one if needed)."""
        spec_ip = (svc or {}).get("spec", {}).get("clusterIP") or ""
        if spec_ip in self.pool:
            if self.ips.get(key) != spec_ip:
                self.pool.reserve(spec_ip)
                self.ips[key] = spec_ip
            return spec_ip
        if key not in self.ips:
            # Either no IP yet, or one from a range we cannot bind: map it locally.
            self.ips[key] = self.pool.allocate()
        return self.ips[key]

    def resolve_in(self, services: Cache) -> Callable[[str, str, bool], str | None]:
        """A resolver over a Service snapshot, for rewriting names in pod specs."""

        def resolve(name: str, ns: str, explicit: bool) -> str | None:
            key = (ns, name)
            svc = services.get(key)
            if svc is None:
                # A `.svc` name for a Service not created yet: reserve its address
                # now so the Service gets it when it appears.
                return self.cluster_ip(key, None) if explicit else None
            spec = svc.get("spec", {})
            if spec.get("type") == "ExternalName":
                return spec.get("externalName")
            if spec.get("clusterIP") == "None":
                for p in spec.get("ports") or [{}]:
                    eps = _ready_endpoints(self.slices(), ns, name, p.get("name", ""))
                    if eps:
                        return eps[0][0]
                return None
            return self.cluster_ip(key, svc)

        return resolve

    # -- reconcile -------------------------------------------------------------
    def service_changed(self, ns: str, name: str) -> None:
        self._dirty.add((ns, name))
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for key in sorted(dirty):
                try:
                    await self._sync(key)
                except ApiError as exc:
                    log.warning("service %s/%s not synced: %s", *key, exc)

    async def _sync(self, key: tuple[str, str]) -> None:
        svc = self.services().get(key)
        spec = (svc or {}).get("spec", {})
        if svc is None or spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName":
            self._close(key, set())
            if svc is None and key in self.ips:
                self.pool.release(self.ips.pop(key))
            if svc is None and key in self.lb_ips:
                self.lb_pool.release(self.lb_ips.pop(key))
            return
        path = f"/api/v1/namespaces/{key[0]}/services/{key[1]}"
        ip = self.cluster_ip(key, svc)
        patch = []
        if not spec.get("clusterIP"):
            patch += [
                {"op": "add", "path": "/spec/clusterIP", "value": ip},
                {"op": "add", "path": "/spec/clusterIPs", "value": [ip]},
            ]
        ports = [p for p in spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        external = spec.get("type") in ("NodePort", "LoadBalancer")
        if external:
            patch += self._node_port_patch(key, spec)
        if patch:
            await self.api.request("PATCH", path, body=patch, content_type=JSON_PATCH)
            return  # the Service's event brings the patched object back here
        wanted = {(ip, int(p["port"])): p.get("name", "") for p in ports}
        if external:
            wanted.update({(NODE_IP, int(p["nodePort"])): p.get("name", "") for p in ports})
        lb_ip = await self._load_balancer(key, svc, path)
        if lb_ip:
            wanted.update({(lb_ip, int(p["port"])): p.get("name", "") for p in ports})
        self._close(key, set(wanted))
        current = self._listeners.setdefault(key, {})
        for (addr, port), port_name in wanted.items():
            if (addr, port) in current:
                continue
            handler = self._handler(key, port_name)
            try:
                current[addr, port] = await asyncio.start_server(handler, addr, port)
            except OSError as exc:
                log.warning("cannot listen on %s:%d for %s/%s: %s", addr, port, *key, exc)

    def _node_port_patch(self, key: tuple[str, str], spec: dict) -> list[dict]:
        """JSON patch ops giving every port without one a free ``nodePort``."""
        used = {
            int(p["nodePort"])
            for k, other in self.services().items()
            if k != key
            for p in (other.get("spec") or {}).get("ports") or []
            if p.get("nodePort")
        }
        ops = []
        for n, port in enumerate(spec.get("ports") or []):
            if port.get("nodePort"):
                continue
            free = [p for p in NODE_PORTS if p not in used]
            chosen = random.choice(free)
            used.add(chosen)
            ops.append({"op": "add", "path": f"/spec/ports/{n}/nodePort", "value": chosen})
        return ops

    async def _load_balancer(self, key: tuple[str, str], svc: dict, path: str) -> str | None:
        """The Service's external IP (allocated and published in its status), or None."""
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        published = ingress[0].get("ip", "") if ingress else ""
        if svc["spec"].get("type") != "LoadBalancer":
            if key in self.lb_ips:
                self.lb_pool.release(self.lb_ips.pop(key))
            if published:
                await self._publish(path, svc, {})
            return None
        ip = self.lb_ips.get(key)
        if ip is None:
            if published in self.lb_pool:
                self.lb_pool.reserve(published)
                ip = published
            else:
                ip = self.lb_pool.allocate()
            self.lb_ips[key] = ip
        if published != ip:
            await self._publish(path, svc, {"ingress": [{"ip": ip, "ipMode": "VIP"}]})
        return ip

    async def _publish(self, path: str, svc: dict, load_balancer: dict) -> None:
        status = {**(svc.get("status") or {}), "loadBalancer": load_balancer}
        patch = [{"op": "add", "path": "/status", "value": status}]
        await self.api.request("PATCH", f"{path}/status", body=patch, content_type=JSON_PATCH)

    def _close(self, key: tuple[str, str], keep: set[tuple[str, int]]) -> None:
        current = self._listeners.get(key, {})
        for addr in list(current):
            if addr not in keep:
                current.pop(addr).close()

    def _handler(self, key: tuple[str, str], port_name: str) -> Callable:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._conns.add(task)
            try:
                await self._forward(key, port_name, reader, writer)
            finally:
                self._conns.discard(task)
                writer.close()

        return handle

    async def _forward(
        self,
        key: tuple[str, str],
        port_name: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        endpoints = _ready_endpoints(self.slices(), key[0], key[1], port_name)
        if not endpoints:
            return  # like a REJECT rule: no ready backend, connection dropped
        host, port = endpoints[next(self._rr) % len(endpoints)]
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def stop(self) -> None:
        for key in list(self._listeners):
            self._close(key, set())
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
