"""The README's run command, minus the set-up: the demo hub runs the example once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests.gatewaytools import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_example_through_the_hub(tmp_path):
    env = dict(os.environ)
    env.update(JHUB_DEMO_HUB_API_PORT=str(free_port()), JHUB_DEMO_PROXY_API_PORT=str(free_port()))
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "run_demo.py"),
        "--once",
        "--hub-port",
        str(free_port()),
        "--gateway-port",
        str(free_port()),
        "--workdir",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        output[-3000:] + (tmp_path / "jupyterhub.log").read_text()[-3000:]
    )
    assert "workers connected" in output
    assert "mean of x + x.T" in output
    assert "/services/dask-gateway/clusters/" in output  # the dashboard link, through the hub
    leftovers = [p for p in psutil.process_iter(["cwd"]) if str(tmp_path) in (p.info["cwd"] or "")]
    assert leftovers == []
