"""Unmodified kubectl in its default modes: server-side apply, diff, dry runs, explain, paging, tokens.

kubectl talks to the HTTPS listener (CA and admin token from the kubeconfig);
``create token`` asks the TokenRequest API and a ServiceAccount token reads
what its Role grants and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from tests.kube.apiserver import KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

KUBECTL = Path(sys.executable).parent / "kubectl"
NS = "modes"


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(home))

    async def call(self, *args: str, stdin: str | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL), "-n", NS, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        return Result(proc.returncode or 0, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        result = await self.call(*args, stdin=stdin)
        assert result.code == 0, f"kubectl {args}: {result.err}"
        return result.out

    async def fails(self, *args: str, stdin: str | None = None) -> str:
        result = await self.call(*args, stdin=stdin)
        assert result.code != 0, f"kubectl {args} unexpectedly succeeded: {result.out}"
        return result.err


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kubectl(kube_emulator: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("home")
    config = kube_emulator.emulator.write_kubeconfig(home / "kubeconfig", namespace=NS, tls=True)
    k = Kubectl(config, home)
    assert "namespace/modes created" in await k.ok("create", "namespace", NS)
    return k


def configmap(name: str, data: dict[str, str]) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name}, "data": data})  # fmt: skip


async def get_yaml(kubectl: Kubectl, *what: str) -> dict:
    return dict(yaml.safe_load(await kubectl.ok("get", *what, "-o", "yaml",
                                                "--show-managed-fields")))  # fmt: skip


async def test_create_configmap_sends_protobuf_and_reads_back(kubectl: Kubectl) -> None:
    result = await kubectl.call("create", "configmap", "literal", "--from-literal=a=1",
                                "--from-literal=b=two", "-v=8")  # fmt: skip
    assert result.code == 0, result.err
    assert "configmap/literal created" in result.out
    # kubectl logs its request headers at -v=8: the body went as protobuf.
    posts = [line for line in result.err.splitlines() if "Content-Type" in line]
    assert any("application/vnd.kubernetes.protobuf" in line for line in posts), posts
    obj = await get_yaml(kubectl, "configmap", "literal")
    assert obj["data"] == {"a": "1", "b": "two"}


async def test_apply_default_validation_rejects_unknown_fields_of_builtin_kinds(
    kubectl: Kubectl,
) -> None:
    manifest = configmap("typo", {"a": "1"}) + "datta: {b: c}\n"
    err = await kubectl.fails("apply", "-f", "-", stdin=manifest)
    assert 'unknown field "datta"' in err
    assert (await kubectl.call("get", "configmap", "typo")).code != 0
    out = await kubectl.ok("apply", "-f", "-", stdin=configmap("clean", {"a": "1"}))
    assert "configmap/clean created" in out
    obj = await get_yaml(kubectl, "configmap", "clean")
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]


async def test_server_side_apply_owns_fields_and_reports_conflicts(kubectl: Kubectl) -> None:
    out = await kubectl.ok("apply", "--server-side", "-f", "-",
                           stdin=configmap("ssa", {"a": "1", "b": "2"}))  # fmt: skip
    assert "configmap/ssa serverside-applied" in out
    obj = await get_yaml(kubectl, "configmap", "ssa")
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")
    assert set(entry["fieldsV1"]["f:data"]) == {"f:a", "f:b"}
    err = await kubectl.fails("apply", "--server-side", "--field-manager=other", "-f", "-",
                              stdin=configmap("ssa", {"a": "changed"}))  # fmt: skip
    assert "conflict" in err.lower() and ".data.a" in err
    await kubectl.ok("apply", "--server-side", "--field-manager=other", "--force-conflicts",
                     "-f", "-", stdin=configmap("ssa", {"a": "changed"}))  # fmt: skip
    # kubectl re-applies without b: b is pruned, a now belongs to "other" and stays.
    await kubectl.ok("apply", "--server-side", "-f", "-", stdin=configmap("ssa", {}))
    obj = await get_yaml(kubectl, "configmap", "ssa")
    assert obj["data"] == {"a": "changed"}


def _env_deployment(env: list[dict]) -> str:
    container = {"name": "c", "image": "python", "command": ["true"], "env": env}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "envs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [container]}}},
    })  # fmt: skip


async def test_server_side_apply_prunes_a_keyed_list_item_whole(kubectl: Kubectl) -> None:
    # helm upgrade dropping an env var: the item goes, key and all (no {} left behind)
    ref = {"secretKeyRef": {"name": "s", "key": "k"}}
    first = [
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": ref},
        {"name": "C", "value": "3"},
    ]
    await kubectl.ok("apply", "--server-side", "-f", "-", stdin=_env_deployment(first))
    await kubectl.ok("apply", "--server-side", "-f", "-",
                     stdin=_env_deployment([first[0], first[2]]))  # fmt: skip
    obj = await get_yaml(kubectl, "deployment", "envs")
    env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]


async def test_diff_shows_changes_and_exits_by_outcome(kubectl: Kubectl) -> None:
    await kubectl.ok("apply", "-f", "-", stdin=configmap("differ", {"a": "1"}))
    same = await kubectl.call("diff", "-f", "-", stdin=configmap("differ", {"a": "1"}))
    assert (same.code, same.out) == (0, ""), same.err
    changed = await kubectl.call("diff", "-f", "-", stdin=configmap("differ", {"a": "2"}))
    assert changed.code == 1, changed.err
    assert '-  a: "1"' in changed.out and '+  a: "2"' in changed.out
    # diff is a server-side dry run: nothing changed.
    assert (await get_yaml(kubectl, "configmap", "differ"))["data"] == {"a": "1"}


async def test_apply_dry_run_server_stores_nothing(kubectl: Kubectl) -> None:
    out = await kubectl.ok("apply", "--dry-run=server", "-f", "-",
                           stdin=configmap("ghost", {"a": "1"}))  # fmt: skip
    assert "configmap/ghost created (server dry run)" in out
    err = await kubectl.fails("get", "configmap", "ghost")
    assert 'configmaps "ghost" not found' in err
    err = await kubectl.fails("apply", "--dry-run=server", "-f", "-",
                              stdin=configmap("Bad_Name", {}))  # fmt: skip
    assert "Invalid value" in err


async def test_explain_uses_the_served_schemas(kubectl: Kubectl) -> None:
    out = await kubectl.ok("explain", "pods.spec.containers")
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
    assert "FIELD: containers <[]Container>" in out
    assert "image\t<string>" in out and "DESCRIPTION:" in out
    out = await kubectl.ok("explain", "jobs.spec.backoffLimit")
    assert "GROUP:      batch" in out and "FIELD: backoffLimit <integer>" in out


async def test_get_chunk_size_pages_through_the_list(kubectl: Kubectl) -> None:
    for n in range(5):
        await kubectl.ok("create", "configmap", f"page-{n}", f"--from-literal=n={n}")
    result = await kubectl.call("get", "configmaps", "-l", "!nothing", "--chunk-size=2", "-v=6",
                                "-o", "name")  # fmt: skip
    assert result.code == 0, result.err
    names = [line for line in result.out.splitlines() if line.startswith("configmap/page-")]
    assert names == [f"configmap/page-{n}" for n in range(5)]
    requests = [line for line in result.err.splitlines() if "/configmaps?" in line]
    assert sum("continue=" in line for line in requests) >= 2, requests


async def _service_account(kubectl: Kubectl) -> None:
    await kubectl.ok("create", "serviceaccount", "reader")
    await kubectl.ok("create", "role", "reader", "--verb=get,list", "--resource=configmaps")
    await kubectl.ok("create", "rolebinding", "reader", "--role=reader",
                     f"--serviceaccount={NS}:reader")  # fmt: skip


async def test_create_token_reads_what_the_role_grants_and_nothing_else(kubectl: Kubectl) -> None:
    await _service_account(kubectl)
    await kubectl.ok("create", "configmap", "readable", "--from-literal=a=1")
    token = (await kubectl.ok("create", "token", "reader", "--duration=15m")).strip()
    assert token.count(".") == 2
    as_sa: Sequence[str] = ("--token", token)
    who = await kubectl.ok(*as_sa, "auth", "whoami", "-o", "yaml")
    assert yaml.safe_load(who)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{NS}:reader"
    )
    assert "configmap/readable" in await kubectl.ok(*as_sa, "get", "configmaps", "-o", "name")
    err = await kubectl.fails(*as_sa, "get", "secrets")
    assert "Forbidden" in err and (
        f'User "system:serviceaccount:{NS}:reader" cannot list resource "secrets"' in err
    )
    err = await kubectl.fails(*as_sa, "delete", "configmap", "readable")
    assert "cannot delete resource" in err
    assert (await kubectl.call(*as_sa, "auth", "can-i", "list", "secrets")).out.strip() == "no"
    assert (await kubectl.ok(*as_sa, "auth", "can-i", "get", "configmaps")).strip() == "yes"
    err = await kubectl.fails("--token", token + "x", "get", "configmaps")
    assert "Unauthorized" in err or "provide credentials" in err


async def test_create_job_and_cronjob_and_their_tables(kubectl: Kubectl) -> None:
    # kubectl sends both as protobuf; no kubelet here, so the Job's pod stays Pending.
    await kubectl.ok("create", "job", "hello", "--image=python:3", "--", "python3", "-c", "1")
    await kubectl.ok("create", "cronjob", "nightly", "--image=python:3", "--schedule=0 3 * * *",
                     "--", "python3", "-c", "1")  # fmt: skip
    jobs = (await kubectl.ok("get", "jobs")).splitlines()
    assert jobs[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert jobs[1].split()[:3] == ["hello", "Running", "0/1"]
    crons = (await kubectl.ok("get", "cronjobs")).splitlines()
    assert crons[0].split()[:4] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND"]
    assert crons[1].split()[:8] == ["nightly", "0", "3", "*", "*", "*", "<none>", "False"]
    pods = await kubectl.ok("get", "pods", "-l", "job-name=hello", "-o", "name")
    assert pods.startswith("pod/hello-")
    spec = yaml.safe_load(await kubectl.ok("get", "cronjob", "nightly", "-o", "yaml"))["spec"]
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
