"""Where one cluster's cold start goes, on jhub-gateway's local backend.

Times are seconds after the client sent ``new_cluster()``, from three clocks of
the same machine: the client's, the service's cluster events
(``GET /api/v1/clusters/<name>/events``) and the scheduler process itself (its
start time and the timestamps of its log lines). Steps:

- request accepted / scheduler process spawned: service events;
- process exec: the scheduler's start time (10 ms resolution);
- distributed imported: the scheduler's first log line (``dask scheduler`` logs
  once it has imported ``distributed``);
- TLS loaded, listening: the log's ``State start`` / ``Scheduler at``;
- first heartbeat, routes written, routes live: service events;
- ``new_cluster()`` returned, Client connected: the client;
- dashboard attached: the runtime's log line once the bokeh dashboard is in
  place (it is imported after the first heartbeat, off the start path);
- dashboard served through Traefik: the client, asking for ``/status`` as soon
  as it is connected (a page asked for before the attach waits for it).

Run alone: ``.venv/bin/python benchmarks/start_trace.py``; ``benchmarks/run.py`` prints it too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import psutil

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_LOG_STEPS = (
    ("distributed imported (first log line)", None),
    ("scheduler state start", "State start"),
    ("TLS loaded, scheduler listening", "Scheduler at:"),
    ("gateway runtime started (preload)", "Gateway runtime API at"),
    ("dashboard attached (bokeh, after the first heartbeat)", "Dashboard attached"),
)
_EVENT_STEPS = (
    ("request accepted", "Created"),
    ("scheduler process spawned", "ProcessStarted"),
    ("pre-started scheduler claimed", "ProcessClaimed"),
    ("first heartbeat received", "Heartbeat"),
    ("routes written for Traefik", "RoutesWritten"),
    ("routes live in Traefik (RUNNING)", "Running"),
)


def cluster_events(address: str, name: str, user: str = "bench") -> list[dict]:
    auth = "Basic " + base64.b64encode(f"{user}:".encode()).decode()
    req = urllib.request.Request(
        f"{address}/api/v1/clusters/{name}/events", headers={"Authorization": auth}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["events"]


def dashboard_page(address: str, name: str, user: str = "bench") -> None:
    """GET the cluster's dashboard through Traefik, as a browser following the link."""
    auth = "Basic " + base64.b64encode(f"{user}:".encode()).decode()
    req = urllib.request.Request(
        f"{address}/clusters/{name}/status", headers={"Authorization": auth}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        if resp.status != 200 or b"bokeh" not in resp.read().lower():
            raise RuntimeError(f"the dashboard of {name} did not answer with its page")


def _python_start(pid: int) -> float | None:
    """Start time of the Python process under ``pid`` (the isolation wrapper's child).

    From ``/proc``: psutil's create_time rounds the boot time to whole seconds.
    """
    try:
        proc = psutil.Process(pid)
        tree = [proc, *proc.children(recursive=True)]
        python = next((p for p in reversed(tree) if "python" in p.name()), tree[-1])
        ticks = int(Path(f"/proc/{python.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (psutil.Error, OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def _log_times(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for label, needle in _LOG_STEPS:
            if label not in found and (needle is None or needle in line):
                found[label] = when
    return found


def trace_one(address: str, data_dir: Path | None) -> list[tuple[str, float]]:
    """Start one cluster with the upstream client and return its steps, in time order."""
    from dask_gateway import Gateway
    from dask_gateway.auth import BasicAuth

    with Gateway(address, auth=BasicAuth("bench")) as gw:
        t0 = time.time()
        cluster = gw.new_cluster()
        returned = time.time()
        client = cluster.get_client(set_as_default=False)
        connected = time.time()
        name = cluster.name
        dashboard_page(address, name)
        served = time.time()
        events = cluster_events(address, name)
        steps: dict[str, float] = {
            "new_cluster() returned": returned,
            "Client connected": connected,
            "dashboard served through Traefik": served,
        }
        for label, reason in _EVENT_STEPS:
            for event in events:
                if event["reason"] == reason:
                    steps[label] = event["time"] / 1000
                    if reason == "ProcessStarted":
                        started = _python_start(int(event["message"].rsplit(" ", 1)[-1]))
                        if started is not None:
                            steps["scheduler interpreter started"] = started
                    break
        log = _workdir(data_dir, name) / "scheduler.log" if data_dir else None
        if log is not None and log.exists():
            steps.update(_log_times(log))
        client.close()
        cluster.shutdown()
    return sorted(((label, when - t0) for label, when in steps.items()), key=lambda s: s[1])


def _workdir(data_dir: Path, name: str) -> Path:
    # a claimed pre-started scheduler's directory is not named after its cluster
    with contextlib.closing(sqlite3.connect(data_dir / "state.sqlite")) as db:
        row = db.execute("SELECT state FROM clusters WHERE name = ?", (name,)).fetchone()
    return Path(json.loads(row[0])["workdir"]) if row else data_dir / "clusters" / name


def format_trace(steps: list[tuple[str, float]], kind: str = "cold") -> str:
    lines = [
        f"| step (one {kind} start, jhub-gateway) | at (s) | since previous (s) |",
        "|---|---|---|",
    ]
    previous = 0.0
    for label, at in steps:
        lines.append(f"| {label} | {at:.3f} | {at - previous:+.3f} |")
        previous = at
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--address", help="a running jhub-gateway (else one is started)")
    parser.add_argument("--data-dir", type=Path, help="its --data-dir (for the scheduler log)")
    parser.add_argument(
        "--warm", action="store_true", help="trace a start that claims a pre-started scheduler"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_local import OurServer, _pool_ready

    from tests.polling import wait_for

    def trace(address: str, data_dir: Path | None, first: bool = False) -> list[tuple[str, float]]:
        # a hub user's pool starts with their first cluster (isolated, as root)
        if args.warm and data_dir is not None and not first:
            wait_for(lambda: _pool_ready(data_dir), timeout=120, what="a ready pool")
        return trace_one(address, data_dir)

    if args.address:
        print(json.dumps({"steps": trace(args.address, args.data_dir)}))
        return
    with tempfile.TemporaryDirectory(prefix="bench-trace-", ignore_cleanup_errors=True) as tmp:
        server = OurServer(Path(tmp), pool=args.warm)
        server.start()
        try:
            trace(server.address, server.data_dir, first=True)  # warms the page cache
            steps = trace(server.address, server.data_dir)
            print(format_trace(steps, "warm" if args.warm else "cold"))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
