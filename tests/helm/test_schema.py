"""values.schema.json is strict yet takes what real configs hold; the generated config passes --check-config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import pytest

from .chart import config_text, render
from .install import CONFIG_YAML

JHUB_GATEWAY = Path(sys.executable).parent / "jhub-gateway"

MISSPELT = {
    "gateway:\n  replcias: 2\n": ("/gateway", "replcias"),
    "traefik:\n  service:\n    tpye: ClusterIP\n": ("/traefik/service", "tpye"),
    "gateway:\n  auth:\n    simple:\n      pasword: x\n": ("/gateway/auth/simple", "pasword"),
    "contoller:\n  enabled: false\n": ("", "contoller"),
}

# What real upstream configs contain and upstream's schema accepts.
ACCEPTED = {
    "parent chart's enabled": "enabled: true\n",
    "null deletes a default": "gateway:\n  nodeSelector: null\n  affinity: null\n",
    "empty scalars": "gateway:\n  image:\n    pullPolicy:\n  backend:\n    namespace:\n",
    "flow-style maps and lists": "gateway:\n  imagePullSecrets: [name: regcred]\n  env: [{name: A, value: b}]\n",
    "prefix /": "gateway:\n  prefix: /\n",
    "prefix services": "gateway:\n  prefix: /services/dask-gateway\n",
    "prefix nested": "gateway:\n  prefix: /lab/x/services/dask-gateway\n",
}


@pytest.mark.parametrize("text", list(MISSPELT), ids=[v[1] for v in MISSPELT.values()])
def test_misspelt_key_fails_naming_it(text: str) -> None:
    where, key = MISSPELT[text]
    with pytest.raises(helm.HelmValuesError) as info:
        render(text)
    assert f"- at '{where}': additional properties '{key}' not allowed" in str(info.value)


def test_wrong_type_fails_naming_the_key() -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render("gateway:\n  replicas: two\n")
    assert "at '/gateway/replicas': got string, want integer" in str(info.value)


@pytest.mark.parametrize("text", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_upstream_shapes_are_accepted(text: str) -> None:
    docs = render(text)
    assert ("Deployment", "api-dask-gateway-jhub-gateway") in docs


def _check_config(tmp_path: Path, name: str, text: str) -> subprocess.Popen[str]:
    path = tmp_path / name
    path.write_text(text)
    env = {**os.environ, "JHUB_GATEWAY_SIMPLE_PASSWORD": "x", "POD_NAMESPACE": "dask-gateway"}
    return subprocess.Popen(
        [str(JHUB_GATEWAY), "--check-config", "-f", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_generated_config_passes_check_config(tmp_path: Path) -> None:
    good = config_text(render(CONFIG_YAML))
    bad = config_text(render(CONFIG_YAML.replace("min=1, max=2", "min=3, max=4")))
    # both at once: each start imports the whole service
    procs = [_check_config(tmp_path, "good.py", good), _check_config(tmp_path, "bad.py", bad)]
    (out, err), (bad_out, bad_err) = (p.communicate(timeout=120) for p in procs)
    assert procs[0].returncode == 0, err
    fields = {o["field"]: o for o in json.loads(out)["cluster_options"]}
    assert fields["worker_cores"]["spec"] == {"type": "int", "min": 1, "max": 2}
    assert fields["worker_memory"]["default"] == 0.5
    assert procs[1].returncode != 0
    lines = (bad_out + bad_err).strip().splitlines()
    assert len(lines) == 1 and "worker_cores" in lines[0], lines


def test_z2jh_example_values_render() -> None:
    example = Path(__file__).parents[2] / "examples" / "z2jh" / "gateway-values.yaml"
    docs = render(example.read_text())
    api = docs[("Deployment", "api-dask-gateway-jhub-gateway")]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in api["containers"][0]["env"]}
    ref = env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hub", "key": "hub.services.dask-gateway.apiToken"}
