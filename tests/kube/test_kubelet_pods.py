"""Process kubelet: env, volumes, probes, restarts and deletion of real processes."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from tests.kube.kubelet.fixtures import cluster  # noqa: F401
from tests.kube.kubelet.testing import Kube, container_status, pod, ready, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube(cluster):  # noqa: F811
    _, api, workdir = cluster
    k = Kube(api, workdir, "kubelet-pods")
    await k.ensure_namespace()
    return k


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


REPORT = (
    "import json, os, sys; keys = sys.argv[1].split(',');"
    "print('RESULT', json.dumps({'env': {k: os.environ.get(k) for k in keys},"
    " 'argv': sys.argv[2:], 'cwd': os.getcwd(),"
    " 'password': open(sys.argv[2]).read(),"
    " 'app': open(os.environ['CONF'] + '/app.yaml').read(),"
    " 'renamed': open('/etc/conf/renamed'.replace('/etc/conf', os.environ['CONF'])).read()}))"
)


async def test_env_fieldrefs_secrets_configmaps_and_volumes(kube: Kube) -> None:
    await kube.create(
        "secrets", {"metadata": {"name": "creds"}, "data": {"password": b64("s3cret")}}
    )
    await kube.create(
        "configmaps",
        {"metadata": {"name": "settings"}, "data": {"mode": "fast", "app.yaml": "x: 1\n"}},
    )
    keys = (
        "POD_IP,POD_NAME,NS,NODE,TIER,PASSWORD,MODE,CM_mode,GREETING,CONF,KUBERNETES_SERVICE_HOST"
    )
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {
            "name": "PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
        },
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "GREETING", "value": "hello-$(POD_NAME)"},
        {"name": "CONF", "value": "/etc/conf"},
    ]
    mounts = [
        {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        {"name": "conf", "mountPath": "/etc/conf"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    volumes = [
        {"name": "creds", "secret": {"secretName": "creds"}},
        {
            "name": "conf",
            "projected": {
                "sources": [
                    {"configMap": {"name": "settings"}},
                    {
                        "secret": {
                            "name": "creds",
                            "items": [{"key": "password", "path": "renamed"}],
                        }
                    },
                ]
            },
        },
        {"name": "scratch", "emptyDir": {}},
    ]
    args = [keys, "/etc/creds/password", "--out=/scratch/x", "$(GREETING)-$(NS)"]
    body = pod(
        "envtest",
        ["python", "-c", REPORT],
        labels={"app": "envtest", "tier": "t1"},
        env=env,
        container={
            "args": args,
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
            "volumeMounts": mounts,
            "workingDir": "/scratch",
        },
        volumes=volumes,
        restartPolicy="Never",
    )
    await kube.create("pods", body)
    done = await kube.wait_pod("envtest", lambda p: p["status"].get("phase") == "Succeeded", "done")
    line = next(x for x in kube.log("envtest").splitlines() if x.startswith("RESULT "))
    seen = json.loads(line.removeprefix("RESULT "))
    env_seen = seen["env"]
    assert env_seen["POD_IP"] == done["status"]["podIP"]
    assert env_seen["POD_IP"].startswith("127.1.")
    assert env_seen["POD_NAME"] == "envtest" and env_seen["NS"] == "kubelet-pods"
    assert env_seen["NODE"] == "emulated-node" and env_seen["TIER"] == "t1"
    assert env_seen["PASSWORD"] == "s3cret" and seen["password"] == "s3cret"
    assert env_seen["MODE"] == "fast" and env_seen["CM_mode"] == "fast"
    assert env_seen["GREETING"] == "hello-envtest"
    assert env_seen["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert seen["app"] == "x: 1\n" and seen["renamed"] == "s3cret"
    # Mount paths in env, args and workingDir point into the pod's local dirs.
    assert not env_seen["CONF"].startswith("/etc/") and os.path.isabs(env_seen["CONF"])
    assert seen["argv"][0].endswith("/volumes/creds/password")
    assert seen["argv"][1].startswith("--out=") and seen["argv"][1].endswith("/volumes/scratch/x")
    assert seen["argv"][2] == "hello-envtest-kubelet-pods"
    assert seen["cwd"].endswith("/volumes/scratch")
    status = container_status(done)
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["state"]["terminated"]["reason"] == "Completed"
    conds = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conds["PodScheduled"] == "True" and conds["Ready"] == "False"
    assert done["spec"]["nodeName"] == "emulated-node"
    # The status also deserialises into the typed models controllers use.
    typed = await client.CoreV1Api(kube.api.client).read_namespaced_pod("envtest", kube.ns)
    assert typed.status.container_statuses[0].state.terminated.exit_code == 0


async def test_missing_secret_waits_then_starts(kube: Kube) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "t"}}}]
    cmd = ["python", "-c", "import os; print('TOKEN', os.environ['TOKEN'])"]
    await kube.create("pods", pod("late", cmd, env=env, restartPolicy="Never"))
    waiting = await kube.wait_pod(
        "late",
        lambda p: (
            container_status(p).get("state", {}).get("waiting", {}).get("reason")
            == "CreateContainerConfigError"
        ),
        "waiting for its secret",
    )
    assert waiting["status"]["phase"] == "Pending"
    await kube.create("secrets", {"metadata": {"name": "late"}, "data": {"t": b64("abc")}})
    await kube.wait_log("late", "TOKEN abc")


async def test_restart_always_counts_restarts(kube: Kube) -> None:
    cmd = ["python", "-c", "print('run', flush=True); raise SystemExit(3)"]
    await kube.create("pods", pod("crashy", cmd, restartPolicy="Always"))
    crashed = await kube.wait_pod(
        "crashy", lambda p: container_status(p).get("restartCount", 0) >= 2, "restarted twice"
    )
    status = container_status(crashed)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert crashed["status"]["phase"] == "Running"
    assert kube.log("crashy").count("run") >= 2


async def test_restart_never_fails_with_exit_code(kube: Kube) -> None:
    await kube.create(
        "pods", pod("failing", ["python", "-c", "raise SystemExit(7)"], restartPolicy="Never")
    )
    failed = await kube.wait_pod(
        "failing", lambda p: p["status"].get("phase") == "Failed", "Failed"
    )
    terminated = container_status(failed)["state"]["terminated"]
    assert terminated["exitCode"] == 7 and terminated["reason"] == "Error"
    assert container_status(failed)["restartCount"] == 0


async def test_on_failure_restarts_until_success(kube: Kube) -> None:
    # Fails on the first run only: the emptyDir marker survives the restart.
    script = (
        "import os, sys; m = sys.argv[1] + '/ran';"
        "first = not os.path.exists(m); open(m, 'w').close(); raise SystemExit(5 if first else 0)"
    )
    body = pod(
        "flaky",
        ["python", "-c", script, "/state"],
        container={"volumeMounts": [{"name": "state", "mountPath": "/state"}]},
        volumes=[{"name": "state", "emptyDir": {}}],
        restartPolicy="OnFailure",
    )
    await kube.create("pods", body)
    done = await kube.wait_pod("flaky", lambda p: p["status"].get("phase") == "Succeeded", "done")
    assert container_status(done)["restartCount"] == 1
    assert container_status(done)["lastState"]["terminated"]["exitCode"] == 5


def _pid(p: dict) -> int:
    return int(container_status(p)["containerID"].removeprefix("emulated://"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_deletion_sigterm_then_sigkill_after_grace(kube: Kube) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('up', flush=True); time.sleep(600)"
    )
    body = pod("stubborn", ["python", "-c", script], terminationGracePeriodSeconds=2)
    await kube.create("pods", body)
    await kube.wait_log("stubborn", "up")
    running = await kube.wait_pod("stubborn", ready, "ready")
    pid = _pid(running)
    assert _alive(pid)
    started = time.monotonic()
    await kube.delete("pods", "stubborn")

    async def gone() -> bool:
        return await kube.get("pods", "stubborn") is None

    await wait_for(gone, what="pod object removed")
    elapsed = time.monotonic() - started
    assert not _alive(pid)
    assert 1.5 < elapsed < 30, elapsed  # waited out the 2 s grace, then SIGKILL


async def test_liveness_failure_restarts_and_exec_readiness(kube: Kube) -> None:
    # Liveness checks a port nobody listens on: the container is killed and restarted.
    # Readiness is an exec probe on a mounted path, which must be mapped too.
    script = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"
    body = pod(
        "unhealthy",
        ["python", "-c", script, "/flags/ready"],
        container={
            "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
            "readinessProbe": {
                "exec": {"command": ["test", "-f", "/flags/ready"]},
                "periodSeconds": 1,
            },
            "livenessProbe": {
                "tcpSocket": {"port": 9},
                "initialDelaySeconds": 3,
                "periodSeconds": 1,
                "failureThreshold": 2,
            },
        },
        volumes=[{"name": "flags", "emptyDir": {}}],
        terminationGracePeriodSeconds=1,
    )
    await kube.create("pods", body)
    await kube.wait_pod("unhealthy", ready, "Ready through the exec probe")
    restarted = await kube.wait_pod(
        "unhealthy", lambda p: container_status(p).get("restartCount", 0) >= 1, "restarted"
    )
    assert restarted["status"]["phase"] == "Running"
    await kube.delete("pods", "unhealthy")
