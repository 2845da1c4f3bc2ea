"""A real ``jupyter server`` (with JupyterLab and dask-labextension) for the lab tests.

The server gets the jhub-gateway extension through the ``jupyter_server_config.d``
entry the package ships (an editable install does not install data files, so
the entry is put on ``JUPYTER_CONFIG_PATH``), and the gateway address through
dask config environment variables, as a notebook image would set them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.gatewaytools import env_without_hub, free_port

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ENTRY = REPO / "client" / "lab" / "etc" / "jhub_gateway_lab.json"


class LabServer:
    """One ``jupyter server`` process, token-authenticated, on a random port."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "jupyter.log"
        config_path = root / "config-path" / "jupyter_server_config.d"
        config_path.mkdir(parents=True)
        shutil.copy(SHIPPED_ENTRY, config_path / SHIPPED_ENTRY.name)
        (root / "notebooks").mkdir()
        inherited = {k: v for k, v in env_without_hub().items() if not k.startswith("DASK_")}
        self.env = {
            **inherited,
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_CONFIG_PATH": str(root / "config-path"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "DASK_CONFIG": str(root / "dask"),
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        cmd = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root / 'notebooks'}",
            "--ServerApp.log_level=DEBUG",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited:\n{self.log_text()[-4000:]}")
            try:
                if self.request("GET", "/api/status")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"jupyter server not up in {timeout}s:\n{self.log_text()[-4000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(
        self, method: str, path: str, body: Any = None, follow: bool = True
    ) -> tuple[int, Any, dict[str, str]]:
        """``(status, decoded body, headers)`` of a token-authenticated request."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        opener = urllib.request.build_opener(*([] if follow else [_NoRedirect()]))
        try:
            with opener.open(req, timeout=60) as resp:
                status, text, headers = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            status, text, headers = exc.code, exc.read(), dict(exc.headers)
        try:
            return status, (json.loads(text) if text else None), headers
        except ValueError:
            return status, text.decode(errors="replace"), headers

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@contextlib.contextmanager
def running_lab(root: Path, env: dict[str, str]) -> Iterator[LabServer]:
    server = LabServer(root, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def gateway_env(address: str, user: str) -> dict[str, str]:
    """Dask config for a notebook server whose user talks to ``address`` with basic auth."""
    return {
        "DASK_GATEWAY__ADDRESS": address,
        "DASK_GATEWAY__AUTH__TYPE": "basic",
        "DASK_GATEWAY__AUTH__KWARGS__USERNAME": user,
    }
