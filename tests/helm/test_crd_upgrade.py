"""The controller brings the chart's CRDs up to date at start (Helm never upgrades crds/).

``jhub-gateway-controller --crd-dir`` as the chart runs it, against the
emulator: an out-of-date CRD (an older chart's) is patched to the files before
the controller watches anything; a CRD that is gone stops it with one line
saying what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.polling import wait_for

from .chart import CHART
from .install import EmulatorThread, kubectl, kubectl_json

pytestmark = [pytest.mark.kube]

CONTROLLER = Path(sys.executable).parent / "jhub-gateway-controller"
DASKCLUSTERS = "daskclusters.jhubgateway.dask.org"


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorThread]:
    emulator = EmulatorThread(tmp_path_factory.mktemp("crd-upgrade")).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def controller(kube: EmulatorThread, crd_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """The controller program, its output (stdout and stderr) going to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
        [
            str(CONTROLLER), "--kubeconfig", str(kube.kubeconfig), f"--crd-dir={crd_dir}",
            "--health-address=127.0.0.1:0", "--KubeController.gateway_instance=crd-test",
            "--KubeController.api_url=http://127.0.0.1:9/api",
            "--KubeController.leader_election=False", "--log-level=INFO",
        ],
        stdout=out, stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, cwd=kube.tmp,
    )  # fmt: skip


def stale_crds(tmp: Path) -> Path:
    """The chart's CRDs as an older chart had them: the DaskCluster one without a column."""
    out = tmp / "old-crds"
    out.mkdir(exist_ok=True)
    for path in sorted((CHART / "crds").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            if doc["metadata"]["name"] == DASKCLUSTERS:
                for version in doc["spec"]["versions"]:
                    version["additionalPrinterColumns"] = version["additionalPrinterColumns"][:1]
        (out / path.name).write_text(yaml.safe_dump_all(docs))
    return out


def columns(kube: EmulatorThread) -> list[str]:
    crd = kubectl_json(kube.kubeconfig, "get", "crd", DASKCLUSTERS)
    return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]


def test_controller_start_patches_stale_crds_to_the_chart(kube: EmulatorThread) -> None:
    kubectl(kube.kubeconfig, "apply", "--server-side", "-f", str(stale_crds(kube.tmp)))
    wanted = columns(kube)
    assert len(wanted) == 1
    log = kube.tmp / "controller-upgrade.log"
    proc = controller(kube, CHART / "crds", log)
    try:
        # the DaskCluster CRD is patched first; the line comes once every CRD is
        wait_for(lambda: "CRDs up to date" in log.read_text(), timeout=60, interval=0.2,
                 what="the controller to report its CRDs up to date")  # fmt: skip
        assert proc.poll() is None  # and it goes on running
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    files = [d for d in yaml.safe_load_all((CHART / "crds" / "daskclusters.yaml").read_text()) if d]
    expected = [c["name"] for c in files[0]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns(kube) == expected


def test_a_missing_crd_stops_the_controller_saying_what_to_do(kube: EmulatorThread) -> None:
    kubectl(kube.kubeconfig, "delete", "crd", DASKCLUSTERS)
    log = kube.tmp / "controller-missing.log"
    proc = controller(kube, CHART / "crds", log)
    assert proc.wait(timeout=60) != 0
    last = log.read_text().strip().splitlines()[-1]
    assert "could not update CRDs" in last and DASKCLUSTERS in last and "reinstall" in last
