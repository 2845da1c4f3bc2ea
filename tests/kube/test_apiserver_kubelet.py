"""The ``kube_cluster`` fixture: emulator + process kubelet run a Deployment's pods."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

KUBECTL = Path(sys.executable).parent / "kubectl"
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: ignored
        command: [python, -c, "import time; print('hello from', flush=True); time.sleep(600)"]
"""


async def kubectl(kubeconfig: Path, home: Path, *args: str, stdin: str | None = None) -> str:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(home))
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 90)
    assert proc.returncode == 0, f"kubectl {args}: {err.decode()}"
    return out.decode()


async def test_deployment_runs_and_logs(kube_cluster, tmp_path):
    assert kube_cluster.kubelet is not None, "process kubelet not importable"
    await kubectl(kube_cluster.kubeconfig, tmp_path, "apply", "-f", "-", stdin=DEPLOYMENT)
    await kubectl(kube_cluster.kubeconfig, tmp_path, "wait", "--for=condition=Available",
                  "deployment/hello", "--timeout=60s")  # fmt: skip
    pods = (await kubectl(kube_cluster.kubeconfig, tmp_path, "get", "pods", "-l", "app=hello",
                          "--no-headers")).splitlines()  # fmt: skip
    assert len(pods) == 2 and all("1/1" in p and "Running" in p for p in pods)
    name = pods[0].split()[0]

    async def logged() -> bool:
        return "hello from" in await kubectl(kube_cluster.kubeconfig, tmp_path, "logs", name)

    await until(logged, interval=0.2, what="log output of the pod")
    await kubectl(
        kube_cluster.kubeconfig, tmp_path, "delete", "deployment", "hello", "--timeout=60s"
    )
    await kubectl(kube_cluster.kubeconfig, tmp_path, "wait", "--for=delete", "pod", "-l", "app=hello",
                  "--timeout=60s")  # fmt: skip


async def test_cli_serve_until_sigterm(tmp_path):
    """``python -m tests.kube serve --kubeconfig PATH`` runs until SIGTERM, then cleans up."""
    kubeconfig = tmp_path / "kubeconfig"
    repo = Path(__file__).parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.kube", "serve", "--kubeconfig", str(kubeconfig),
        "--workdir", str(tmp_path / "work"), cwd=repo, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for _ in range(20):  # log lines come first
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            if "Kubernetes API emulator at http://127.0.0.1:" in line:
                break
        else:
            raise AssertionError("no banner")
        out = await kubectl(kubeconfig, tmp_path, "get", "namespaces", "-o", "name")
        assert "namespace/default" in out.split()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
