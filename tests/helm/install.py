"""Install the chart with the Helm SDK onto the Kubernetes emulator (RBAC enforced).

The emulator (API server + process kubelet) runs on an event loop in a thread of
the test process, so tests stay synchronous and may use the blocking upstream
client, kubectl and the Helm SDK (whose calls block) freely.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import helm_python as helm

from tests.kube.apiserver import launch
from tests.kube.apiserver.cluster import KubeCluster
from tests.polling import wait_for

from .chart import CHART, NAMESPACE, RELEASE, values

T = TypeVar("T")
HELM_TIMEOUT = 180  # seconds Helm waits for every object to be ready

PASSWORD = "seed-guide-password"
# A config.yaml in the style of the install guide: simple auth and the guide's
# extraConfig map of cluster options (smaller defaults for a 2-core machine).
CONFIG_YAML = f"""
gateway:
  # probe every 2 s rather than 10 s: a rolled api pod is Ready as soon as it answers
  readinessProbe:
    initialDelaySeconds: 1
    periodSeconds: 2
  auth:
    type: simple
    simple:
      password: {PASSWORD}
  extraConfig:
    # Note that the key name here doesn't matter.
    clusteroptions: |
        from dask_gateway_server.options import Options, Integer, Float

        def option_handler(options):
            return {{
                "worker_cores": options.worker_cores,
                "worker_memory": "%fG" % options.worker_memory,
            }}

        c.Backend.cluster_options = Options(
            Integer("worker_cores", 1, min=1, max=2, label="Worker Cores"),
            Float("worker_memory", 0.5, min=0.25, max=2, label="Worker Memory (GiB)"),
            handler=option_handler,
        )
"""


class EmulatorThread:
    """``launch(rbac=True)`` on its own loop in a daemon thread; ``stop()`` ends it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kube", daemon=True)
        self.cluster: KubeCluster | None = None

    def start(self) -> EmulatorThread:
        self.thread.start()
        self.cluster = self.run(launch(self.tmp, kubelet=True, rbac=True))
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def kubeconfig(self) -> Path:
        assert self.cluster is not None
        return self.cluster.kubeconfig

    def stop(self) -> None:
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            self.run(cluster.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def api_routed(address: str, timeout: float = 60) -> None:
    """Wait until Traefik at ``address`` routes the gateway API again.

    After a roll the api Service's endpoints change, and Traefik drops a route
    whose Service has no ready endpoint until its watch brings the new ones:
    for that moment it answers its own 404 instead of the gateway's 401.
    """

    def routed() -> bool:
        try:
            with urllib.request.urlopen(f"http://{address}/api/v1/clusters/", timeout=5):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code != 404
        except OSError:
            return False

    wait_for(routed, timeout=timeout, interval=0.2, what=f"the gateway API routed at {address}")


def kubectl(kubeconfig: Path, *args: str) -> str:
    """Run real kubectl; its stdout (a non-zero exit fails with stderr)."""
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, *args, "-o", "json"))


class Release:
    """One Helm release of the chart, driven through the Helm SDK (Helm v4's own actions)."""

    def __init__(self, kubeconfig: Path, name: str = RELEASE, namespace: str = NAMESPACE) -> None:
        self.name, self.namespace = name, namespace
        self.config = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)

    def upgrade_install(self, config_yaml: str) -> dict[str, Any]:
        """``helm upgrade --install --create-namespace --wait -f config.yaml``."""
        user_values = values(config_yaml)
        deployed = [r["name"] for r in self.config.list() or []]
        if self.name in deployed:
            return self.config.upgrade(
                helm.Chart.load(CHART), self.name, user_values, namespace=self.namespace,
                wait="watcher", timeout=HELM_TIMEOUT,
            )  # fmt: skip
        return self.config.install(
            helm.Chart.load(CHART), self.name, user_values, namespace=self.namespace,
            create_namespace=True, wait="watcher", timeout=HELM_TIMEOUT,
        )  # fmt: skip

    def uninstall(self) -> dict[str, Any]:
        return self.config.uninstall(self.name, wait="watcher", timeout=HELM_TIMEOUT)

    def close(self) -> None:
        self.config.close()
