"""``python -m tests.kube serve --kubeconfig PATH``: run the emulator (+ kubelet) by hand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path

from .apiserver import launch


async def _serve(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="kube-emulator-"))
    cluster = await launch(
        workdir, kubelet=not args.no_kubelet, kubeconfig=Path(args.kubeconfig), port=args.port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kubelet = "with" if cluster.kubelet is not None else "without"
    print(f"Kubernetes API emulator at {cluster.url} ({kubelet} kubelet)", flush=True)
    print(f"kubeconfig: {cluster.kubeconfig}   workdir: {workdir}", flush=True)
    try:
        await stop.wait()
    finally:
        await cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kube")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API emulator until Ctrl-C or SIGTERM")
    serve.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = random)")
    serve.add_argument("--workdir", help="state/log directory (default: a new temp dir)")
    serve.add_argument("--no-kubelet", action="store_true", help="do not run the kubelet")
    serve.add_argument("--log-level", default="INFO", help="Python logging level")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
