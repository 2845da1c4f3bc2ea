"""``scripts/kube-demo.sh``: emulator + ``helm upgrade --install``, then wait for Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from pathlib import Path

from .chart import NAMESPACE, RELEASE
from .install import EmulatorThread, Release, kubectl

DEMO_CONFIG = """
gateway:
  auth:
    type: simple
    simple:
      password: demo
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/kube-demo.sh")
    parser.add_argument(
        "values",
        nargs="?",
        help="a config.yaml for the chart (default: simple auth, password demo)",
    )
    parser.add_argument(
        "--workdir", help="emulator state, pod logs and kubeconfig (default: a new temp dir)"
    )
    args = parser.parse_args()
    config = Path(args.values).read_text() if args.values else DEMO_CONFIG
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="jhub-gateway-demo-"))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kube = EmulatorThread(workdir).start()
    release = None
    try:
        print(f"emulator up; kubeconfig: {kube.kubeconfig}", flush=True)
        release = Release(kube.kubeconfig)
        print(f"helm upgrade --install {RELEASE} (namespace {NAMESPACE}) ...", flush=True)
        release.upgrade_install(config)
        print(kubectl(kube.kubeconfig, "get", "service", "--namespace", NAMESPACE), flush=True)
        svc = kubectl(kube.kubeconfig, "get", "service", "--namespace", NAMESPACE,
                      f"traefik-{RELEASE}-jhub-gateway", "-o",
                      "jsonpath={.status.loadBalancer.ingress[0].ip}")  # fmt: skip
        print(f"gateway address: http://{svc}", flush=True)
        if not args.values:
            print(
                "  from dask_gateway import Gateway, BasicAuth\n"
                f'  gateway = Gateway("http://{svc}", auth=BasicAuth("alice", "demo"))\n'
                "  cluster = gateway.new_cluster()",
                flush=True,
            )
        print(f"KUBECONFIG={kube.kubeconfig} kubectl get pods -n {NAMESPACE}", flush=True)
        print("running until Ctrl-C", flush=True)
        stop.wait()
    finally:
        if release is not None:
            release.close()
        kube.stop()
        print(f"stopped; pod logs under {workdir}", flush=True)


if __name__ == "__main__":
    main()
