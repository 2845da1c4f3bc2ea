"""Run a real jhub-gateway service (with its Traefik and local clusters) for tests."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

DEFAULT_CONFIG = """
from jhub_gateway.options import Options, Integer, Float, String
c.GatewayApp.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=4, label="Worker cores"),
    Float("worker_memory", default=0.5, min=0.25, max=4, label="Worker memory (GiB)"),
    String("environment_tag", default="", label="Free text"),
    handler=lambda opts: {"worker_cores": opts.worker_cores,
                          "worker_memory": int(opts.worker_memory * 2**30)},
)
c.ClusterConfig.scheduler_start_timeout = 60
c.ClusterConfig.worker_start_timeout = 60
c.LocalBackend.heartbeat_period = 2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class GatewayProcess:
    """One ``jhub-gateway`` process with a data dir; restartable."""

    def __init__(
        self, root: Path, extra_config: str = "", prefix: str = "/", args: list[str] | None = None
    ):
        self.root = root
        self.data_dir = root / "data"
        self.port = free_port()
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.address = f"http://127.0.0.1:{self.port}{self.prefix}"
        self.config_path = root / "jhub_gateway_config.py"
        self.config_path.write_text(DEFAULT_CONFIG + "\n" + extra_config)
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "gateway.log"

    def start(self, timeout: float = 60) -> None:
        cmd = [
            sys.executable,
            "-m",
            "jhub_gateway.hub_service",
            "--config",
            str(self.config_path),
            "--address",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--prefix",
            self.prefix or "/",
            "--log-level",
            "DEBUG",
            *self.args,
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}"
                )
            try:
                status, _ = self.request("GET", "/api/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gateway not healthy in {timeout}s:\n{self.log_text()[-4000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        user: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        hdrs = {"X-Gateway-Extensions": "1", **(headers or {})}
        if user is not None:
            hdrs["Authorization"] = basic(user)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.address + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            text = exc.read()
            status = exc.code
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cluster_processes(self) -> list[psutil.Process]:
        """Scheduler and worker processes of this gateway's clusters (they run in its data
        dir), without the pre-started schedulers no cluster has claimed yet."""
        return [p for p in self.processes_under(self.data_dir / "clusters") if not _unclaimed(p)]

    def workdir(self, name: str) -> Path:
        """Cluster ``name``'s directory (a claimed pre-started scheduler's is not named after it)."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "state.sqlite")) as db:
            row = db.execute("SELECT state FROM clusters WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no cluster {name} in the store")
        return Path(json.loads(row[0])["workdir"])

    def pooled_processes(self, role: str = "scheduler") -> list[psutil.Process]:
        """Pre-started schedulers (or workers) waiting for a claim (the interpreters, not
        their sandbox)."""
        found = []
        for p in self.processes_under(self.data_dir / "clusters"):
            with contextlib.suppress(psutil.Error):
                if _unclaimed(p) and f"runtime.pooled_{role}" in " ".join(p.cmdline()):
                    found.append(p)
        return found

    def processes_under(self, directory: Path) -> list[psutil.Process]:
        found = []
        root = str(directory)
        for proc in psutil.process_iter(["cwd"]):
            try:
                if (proc.info["cwd"] or "").startswith(root):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def kill_everything(self) -> None:
        self.stop()
        leftovers = self.processes_under(self.data_dir)
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=10)


@contextlib.contextmanager
def running_gateway(root: Path, **kwargs: Any) -> Iterator[GatewayProcess]:
    """A started gateway; on exit it and every process it started are gone."""
    gw = GatewayProcess(root, **kwargs)
    gw.start()
    try:
        yield gw
    finally:
        gw.kill_everything()
        assert gw.processes_under(gw.data_dir) == []


def env_without_hub() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}


def _unclaimed(proc: psutil.Process) -> bool:
    # a pooled process runs in clusters/pool-*/run; a claim writes the token there first
    try:
        cwd = Path(proc.cwd())
    except psutil.Error:
        return False
    return cwd.parent.name.startswith("pool-") and not (cwd / "api-token").exists()
