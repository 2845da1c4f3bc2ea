"""The command line: config errors say what to fix; --generate-config writes every option."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "jhub_gateway.hub_service", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--address", "nonsense"], "", "address must look like HOST:PORT"),
        (
            ["--auth", "no.such.Authenticator"],
            "",
            "cannot load authenticator 'no.such.Authenticator'",
        ),
        (["--backend", "no.such.Backend"], "", "cannot load backend"),
        ([], 'c.GatewayApp.session_max_age = "x"', "session_max_age"),
        ([], 'c.GatewayApp.cookie_secret = "abcd"', "cookie_secret must be at least 32 bytes"),
        ([], 'c.UserQuotas.group_limits = {"g": {"gpus": 1}}', "group_limits['g']"),
    ],
)
def test_config_errors_fail_at_start_with_a_message(tmp_path, args, config, message):
    (tmp_path / "jhub_gateway_config.py").write_text(config)
    result = run([*args, "--data-dir", str(tmp_path / "data")], tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_config_lists_options_with_help(tmp_path):
    result = run(["--generate-config"], tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "jhub_gateway_config.py").read_text()
    for option in (
        "c.GatewayApp.address",
        "c.ClusterConfig.idle_timeout",
        "c.UserQuotas.max_clusters",
        "c.JupyterHubAuthenticator.cache_ttl",
        "c.TraefikProxy.tcp_address",
        "c.LocalBackend.heartbeat_period",
    ):
        assert f"# {option} =" in text, option
    assert run(["--generate-config"], tmp_path).returncode != 0  # never overwrites
