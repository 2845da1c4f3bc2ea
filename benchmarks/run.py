"""The one benchmark command: jhub-gateway vs upstream dask-gateway-server, one table.

Both servers run side by side in the same run and are driven by the same upstream
``dask_gateway`` client; rounds alternate between them (upstream first in even
rounds, ours first in odd ones) and each row is the median over the rounds:

- local backend (``bench_local.measure_round``, each round in a fresh client
  process): cold start until a Client is connected, ``scale(10)`` until 10 workers,
  submit round trip and 100 MB from the scheduler, through the proxy and direct;
- API throughput with JupyterHub auth through each server's public address at
  1/32/128 concurrent clients (``bench_hub_auth.hub_gateways`` / ``load``);
- service (+ proxy) RSS with 20 idle clusters (``bench_local``);
- Kubernetes (``--kube``, the default; ``--no-kube`` skips it): our controller and
  upstream's ``dask-gateway-server kube-controller`` on one API emulator with the
  process kubelet (``bench_kube_upstream.py --json``, ``--rounds`` lifecycles each,
  taking turns): ``new_cluster()`` until usable, ``scale(4)``, the controller's API
  writes per lifecycle and its RSS. Upstream's controller runs from its own venv
  (``--upstream-venv``, default ``/tmp/upstream-dg``; see that script's docstring);
  without it the rows show ours only;
- then the start-up trace of one jhub-gateway cluster (``start_trace.py``).

Every number a round reports lands in the medians; the table shows the rows of
``ROWS`` that have one, with "-" where one server has none (no ratio then). So a
new measurement is one key in a round's dict plus one entry in ``ROWS``.

Run: ``.venv/bin/python benchmarks/run.py [--rounds 5] [--no-kube] [--write-readme]``;
``--write-readme`` replaces the generated part of the README's Performance section.
Upstream must be importable in this venv (``pip install dask-gateway-server``, the
``bench`` extra); it is never a dependency of the project. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_hub_auth import hub_gateways, load  # noqa: E402
from bench_local import OurServer, UpstreamServer  # noqa: E402
from start_trace import format_trace  # noqa: E402

LABELS = ("upstream", "jhub-gateway")
API_LOAD = ((1, 100), (32, 960), (128, 1280))  # (concurrent clients, requests per round)
BEGIN, END = "<!-- benchmarks/run.py:begin -->", "<!-- benchmarks/run.py:end -->"


Results = dict[str, dict[str, float]]  # server label -> row key -> median


def _child(*args: str, timeout: float = 900) -> dict:
    # a fresh client process per round: the upstream client's Gateway.__del__ can
    # deadlock a later Gateway's event loop when both live in one process
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each key's median over the rounds that reported it."""
    keys = dict.fromkeys(k for r in rounds for k in r)
    return {k: statistics.median(r[k] for r in rounds if k in r) for k in keys}


def _order(i: int) -> tuple[str, ...]:
    return LABELS if i % 2 == 0 else LABELS[::-1]


def _idle_rss(server, clusters: int = 20) -> float:
    """RSS (MiB) of the service and its proxy while a client holds ``clusters`` idle."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "bench_local.py"),
            "--hold-idle",
            server.address,
            str(clusters),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("holding idle clusters failed")
        return server.rss() / 2**20
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(300)


Trace = list[tuple[str, float]]


def _trace(server: Any, *extra: str) -> Trace:
    """The start-up trace of one cluster of a running jhub-gateway (``start_trace.py``)."""
    raw = _child(
        str(HERE / "start_trace.py"),
        "--address",
        server.address,
        "--data-dir",
        str(server.data_dir),
        *extra,
    )
    return [(label, at) for label, at in raw["steps"]]


def local_rows(rounds: int) -> tuple[Results, Trace, Trace]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-up-", ignore_cleanup_errors=True) as up_dir,
        tempfile.TemporaryDirectory(prefix="bench-ours-", ignore_cleanup_errors=True) as our_dir,
        tempfile.TemporaryDirectory(prefix="bench-warm-", ignore_cleanup_errors=True) as warm_dir,
    ):
        # cold rows with pools off; warm starts against a second one with them on
        servers: dict[str, Any] = {
            "upstream": UpstreamServer(Path(up_dir)),
            "jhub-gateway": OurServer(Path(our_dir), pool=False),
            "warm": OurServer(Path(warm_dir)),
        }
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():  # warm caches (imports, page cache) once
                _child(str(HERE / "bench_local.py"), "--round", server.address, "--workers", "1")
            results: dict[str, list[dict[str, float]]] = {label: [] for label in LABELS}
            for i in range(rounds):
                for label in _order(i):
                    results[label].append(
                        _child(str(HERE / "bench_local.py"), "--round", servers[label].address)
                    )
                    print(f"round {i + 1} {label}: {results[label][-1]}", file=sys.stderr)
                warm = servers["warm"]
                results["jhub-gateway"][-1] |= _child(
                    str(HERE / "bench_local.py"), "--warm-round", warm.address, str(warm.data_dir)
                )
                # upstream has no pre-started schedulers: its warm start is its cold start
                results["upstream"][-1]["warm_start"] = results["upstream"][-1]["cold_start"]
                print(f"round {i + 1} warm: {results['jhub-gateway'][-1]}", file=sys.stderr)
            medians = {label: _medians(rs) for label, rs in results.items()}
            for label in _order(rounds):
                medians[label]["rss_mb"] = _idle_rss(servers[label])
            trace = _trace(servers["jhub-gateway"])
            warm_trace = _trace(servers["warm"], "--warm")
        finally:
            for server in servers.values():
                server.stop()
    return medians, trace, warm_trace


#: bench_kube_upstream's JSON keys (its sides are "ours" and "upstream") -> our row keys
KUBE_KEYS = {
    "new_cluster() until usable s": "kube_new_cluster",
    "scale(4) until 4 workers s": "kube_scale4",
    "API writes": "kube_writes",
    "controller RSS MiB": "kube_rss_mb",
}
KUBE_SIDES = {"upstream": "upstream", "ours": "jhub-gateway"}


def kube_rows(rounds: int, upstream_venv: Path) -> Results:
    """The Kubernetes rows: both controllers, lifecycles taking turns on one emulator."""
    raw = _child(
        str(HERE / "bench_kube_upstream.py"),
        "--json",
        "--runs",
        str(rounds),
        "--upstream-venv",
        str(upstream_venv),
        timeout=600 + 300 * rounds,
    )
    if "upstream" not in raw:
        print(f"kube: upstream's controller did not run (venv {upstream_venv})", file=sys.stderr)
    return {
        label: {row: raw[side][key] for key, row in KUBE_KEYS.items() if key in raw[side]}
        for side, label in KUBE_SIDES.items()
        if side in raw
    }


async def api_rows(rounds: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-hub-", ignore_cleanup_errors=True) as tmp:
        async with hub_gateways(Path(tmp)) as gws:
            out: dict[str, dict[str, float]] = {label: {} for label in LABELS}
            for concurrency, total in API_LOAD:
                per: dict[str, list[float]] = {label: [] for label in LABELS}
                for i in range(rounds):
                    for label in _order(i):
                        rps, _ = await load(
                            gws.public[label], gws.tokens, concurrency, total, "cookie"
                        )
                        per[label].append(rps)
                for label in LABELS:
                    out[label][f"api{concurrency}"] = statistics.median(per[label])
    return out


ROWS = (
    ("cold_start", "cold start: `new_cluster()` until a Client is connected (s)", "{:.3f}"),
    ("warm_start", "warm start (a pre-started scheduler; upstream: its cold start) (s)", "{:.3f}"),
    ("scale10", "`scale(10)` until 10 workers are connected (s)", "{:.2f}"),
    ("rpc_proxied_ms", "submit round trip through the proxy (ms)", "{:.1f}"),
    ("rpc_direct_ms", "submit round trip direct to the scheduler (ms)", "{:.1f}"),
    ("rpc_overhead", "RPC: through the proxy / direct", "{:.2f}x"),
    ("mb100_proxied", "100 MB from the scheduler through the proxy (s)", "{:.3f}"),
    ("mb100_direct", "100 MB from the scheduler direct (s)", "{:.3f}"),
    ("mb100_overhead", "100 MB: through the proxy / direct", "{:.2f}x"),
    ("api1", "API req/s with hub auth, public address, 1 client", "{:.0f}"),
    ("api32", "API req/s with hub auth, public address, 32 clients", "{:.0f}"),
    ("api128", "API req/s with hub auth, public address, 128 clients", "{:.0f}"),
    ("rss_mb", "service + proxy RSS with 20 idle clusters (MiB)", "{:.0f}"),
    ("kube_new_cluster", "Kubernetes: `new_cluster()` until usable (DaskCluster -> Running) (s)", "{:.2f}"),
    ("kube_scale4", "Kubernetes: `scale(4)` until 4 workers are connected (s)", "{:.2f}"),
    ("kube_writes", "Kubernetes: controller API writes per lifecycle (create, scale 4, stop, delete)", "{:.0f}"),
    ("kube_rss_mb", "Kubernetes: controller RSS (MiB)", "{:.1f}"),
)  # fmt: skip


def format_table(results: Results, rounds: int) -> str:
    for r in results.values():
        if "rpc_proxied_ms" in r and "rpc_direct_ms" in r:
            r["rpc_overhead"] = r["rpc_proxied_ms"] / r["rpc_direct_ms"]
        if "mb100_proxied" in r and "mb100_direct" in r:
            r["mb100_overhead"] = r["mb100_proxied"] / r["mb100_direct"]
    up, ours = results.get("upstream", {}), results.get("jhub-gateway", {})
    lines = [
        f"| metric (median of {rounds} alternating rounds) | upstream | jhub-gateway | ours / upstream |",
        "|---|---|---|---|",
    ]
    for key, label, fmt in ROWS:
        if key not in up and key not in ours:
            continue  # not measured in this run (--no-kube, say)
        shown = [fmt.format(side[key]) if key in side else "-" for side in (up, ours)]
        ratio = f"{ours[key] / up[key]:.2f}x" if key in up and key in ours and up[key] else ""
        lines.append(f"| {label} | {shown[0]} | {shown[1]} | {ratio} |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    body = readme.read_text()
    start, end = body.index(BEGIN) + len(BEGIN), body.index(END)
    readme.write_text(body[:start] + "\n" + text + "\n" + body[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds (>= 5 for the README)"
    )
    parser.add_argument("--write-readme", action="store_true", help="regenerate README's table")
    parser.add_argument(
        "--kube",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the Kubernetes rows (default: on; --no-kube skips them)",
    )
    parser.add_argument(
        "--upstream-venv",
        type=Path,
        default=Path("/tmp/upstream-dg"),
        help="venv with upstream's dask-gateway-server[kubernetes], for the Kubernetes rows",
    )
    args = parser.parse_args()
    results, trace, warm_trace = local_rows(args.rounds)
    for label, rows in asyncio.run(api_rows(args.rounds)).items():
        results[label].update(rows)
    if args.kube:
        try:
            kube = kube_rows(args.rounds, args.upstream_venv)
        except (SystemExit, subprocess.TimeoutExpired) as exc:  # keep the rows measured so far
            print(f"kube rows left out: {exc}", file=sys.stderr)
            kube = {}
        for label, rows in kube.items():
            results[label].update(rows)
    import dask_gateway_server

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    text = "\n\n".join(
        (
            f"Generated by `benchmarks/run.py --rounds {args.rounds}` on {when}: upstream "
            f"dask-gateway-server {dask_gateway_server.__version__}, Python "
            f"{platform.python_version()}, {_cpus()} CPUs.",
            format_table(results, args.rounds),
            format_trace(trace),
            format_trace(warm_trace, "warm"),
        )
    )
    print(text)
    if args.write_readme:
        write_readme(text)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
