"""Unmodified kubectl against the emulator: apply, get (Table), -o yaml, -w, scale, delete."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

KUBECTL = Path(sys.executable).parent / "kubectl"
DEADLINE = 60.0

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
"""

WIDGET = """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: SIZE}
"""


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(home))
        self.home = home

    async def run(self, *args: str, stdin: str | None = None, ok: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        if ok:
            assert proc.returncode == 0, f"kubectl {args}: {err.decode()}"
            return out.decode()
        assert proc.returncode != 0, f"kubectl {args} unexpectedly succeeded"
        return err.decode()

    async def apply(self, manifest: str) -> str:
        return await self.run("apply", "-f", "-", stdin=manifest)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kubectl(kube_emulator, tmp_path_factory):
    k = Kubectl(kube_emulator.kubeconfig, tmp_path_factory.mktemp("home"))
    out = await k.apply(CRD)
    assert "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created" in out
    await k.run("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    return k


async def test_apply_and_get_printer_columns(kubectl):
    out = await kubectl.apply(WIDGET.replace("SIZE", "small"))
    assert "widget.example.com/w1 created" in out
    table = (await kubectl.run("get", "widgets")).splitlines()
    assert table[0].split() == ["NAME", "SIZE", "REPLICAS", "AGE"]
    name, size, replicas, _age = table[1].split()
    assert (name, size, replicas) == ("w1", "small", "1")  # replicas defaulted by the schema
    assert (await kubectl.run("get", "wd", "w1", "-o", "name")).strip() == "widget.example.com/w1"


async def test_get_yaml_and_reapply(kubectl):
    await kubectl.apply(WIDGET.replace("SIZE", "small"))
    obj = yaml.safe_load(await kubectl.run("get", "widget", "w1", "-o", "yaml"))
    assert obj["kind"] == "Widget" and obj["apiVersion"] == "example.com/v1"
    assert obj["spec"] == {"size": "small", "replicas": 1}
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1
    out = await kubectl.apply(WIDGET.replace("SIZE", "large"))
    assert "widget.example.com/w1 configured" in out
    obj = yaml.safe_load(await kubectl.run("get", "widget", "w1", "-o", "yaml"))
    assert obj["spec"]["size"] == "large" and obj["metadata"]["generation"] == 2


async def test_invalid_and_unknown_fields_rejected(kubectl):
    err = await kubectl.run("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "huge"), ok=False)
    assert "Unsupported value" in err and "spec.size" in err
    bad = WIDGET.replace("SIZE", "small, colour: red").replace("w1", "w9")
    err = await kubectl.run("apply", "-f", "-", stdin=bad, ok=False)
    assert 'unknown field "spec.colour"' in err


async def test_get_watch_sees_update(kubectl):
    await kubectl.apply(WIDGET.replace("SIZE", "small"))
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL), "get", "widgets", "-w", "--output-watch-events",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=kubectl.env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), DEADLINE)).decode()]
        assert lines[0].split()[:2] == ["EVENT", "NAME"]
        await kubectl.run(
            "patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":"large"}}'
        )
        end = time.monotonic() + DEADLINE
        while not any(line.split()[:3] == ["MODIFIED", "w1", "large"] for line in lines):
            assert time.monotonic() < end, f"no update seen: {lines}"
            lines.append((await asyncio.wait_for(proc.stdout.readline(), DEADLINE)).decode())
    finally:
        proc.kill()
        await proc.wait()


async def test_scale_subresource(kubectl):
    await kubectl.apply(WIDGET.replace("SIZE", "small"))
    out = await kubectl.run("scale", "widget", "w1", "--replicas=3")
    assert "widget.example.com/w1 scaled" in out
    assert await kubectl.run("get", "widget", "w1", "-o", "jsonpath={.spec.replicas}") == "3"


async def test_deployment_apply_twice_and_scale(kubectl):
    manifest = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: c, image: x, command: [sleep, "100"], env: [{name: A, value: "ENVVAL"}]}
"""
    assert "created" in await kubectl.apply(manifest.replace("ENVVAL", "1"))
    assert "configured" in await kubectl.apply(manifest.replace("ENVVAL", "2"))
    await kubectl.run("scale", "deployment", "web", "--replicas=2")
    await kubectl.run("wait", "--for=jsonpath={.status.replicas}=2", "deployment/web",
                      "--timeout=30s")  # fmt: skip
    pods = (await kubectl.run("get", "pods", "-l", "app=web", "--no-headers")).splitlines()
    assert len(pods) == 2 and all("Pending" in p for p in pods)
    env = await kubectl.run("get", "pods", "-l", "app=web",
                            "-o", "jsonpath={.items[*].spec.containers[0].env[0].value}")  # fmt: skip
    assert env.split() == ["2", "2"]
    await kubectl.run("delete", "deployment", "web", "--cascade=foreground", "--timeout=30s")
    assert (await kubectl.run("get", "pods", "-l", "app=web", "-o", "name")).strip() == ""


async def test_delete(kubectl):
    await kubectl.apply(WIDGET.replace("SIZE", "small"))
    out = await kubectl.run("delete", "widget", "w1", "--timeout=30s")
    assert 'widget.example.com "w1" deleted' in out
    err = await kubectl.run("get", "widget", "w1", ok=False)
    assert 'widgets.example.com "w1" not found' in err
