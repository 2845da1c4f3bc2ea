"""The warm pod's claim channel, with a real ``python -m jhub_gateway.runtime.warm_pod``.

One warm process per module (module fixture): a claim with the wrong key is
refused and leaves it waiting, the right claim makes it a guarded scheduler
that heartbeats with the delivered token, and a second claim is refused. The
credentials land in files created exclusively in a private directory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jhub_gateway import private_files
from jhub_gateway.controller import warmclaim
from jhub_gateway.controller.secrets import new_credentials
from jhub_gateway.controller.warmclaim import ClaimFailed, claim, claim_message
from jhub_gateway.dashboard_credential import HEADER, dashboard_credential
from jhub_gateway.runtime import warm_pod
from jhub_gateway.tls import new_keypair
from jhub_gateway.warm_claim_message import Claim, WarmClaimError, parse_warm_claim
from tests.gatewaytools import free_port
from tests.polling import wait_for
from tests.runtime.runtime_helpers import FakeGateway

HOST = "127.0.0.1"


class Warm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cert, self.key = new_keypair("dask-warm-test")
        (root / "claim").mkdir()
        (root / "tmp").mkdir()
        for name, data in (("tls.crt", self.cert), ("tls.key", self.key)):
            (root / "claim" / name).write_text(data)
        self.claim_port, self.api_port, self.dashboard_port = free_port(), free_port(), free_port()
        self.creds = new_credentials("ns.warmtest")
        self.gateway = FakeGateway(self.creds.api_token).start()
        cmd = [
            sys.executable, "-m", "jhub_gateway.runtime.warm_pod",
            "--claim-address", f"{HOST}:{self.claim_port}",
            "--health-address", f"{HOST}:{self.api_port}",
            "--claim-cert", str(root / "claim" / "tls.crt"),
            "--claim-key", str(root / "claim" / "tls.key"),
        ]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(root / "tmp"), "POD_IP": HOST}
        env.pop("DASK_GATEWAY_API_URL", None)
        self.log = (root / "warm.log").open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, 60, what="the warm pod's health answer")

    def healthy(self) -> bool:
        assert self.proc.poll() is None, (self.root / "warm.log").read_text()
        return get(f"http://{HOST}:{self.api_port}/api/health")[0] == 200

    def request(self) -> Claim:
        args = [
            "--protocol", "tls", "--host", "$(POD_IP)", "--port", "0",
            "--dashboard-address", f"$(POD_IP):{self.dashboard_port}", "--no-dashboard",
            "--preload", "jhub_gateway.runtime.preload",
            "--gateway-api-address", f"$(POD_IP):{self.api_port}",
            "--gateway-heartbeat-period", "0", "--gateway-adaptive-period", "1",
            "--gateway-idle-timeout", "0",
        ]  # fmt: skip
        return claim_message("ns.warmtest", self.gateway.url, self.creds, tuple(args))

    def claim(self, cert: str, key: str) -> None:
        asyncio.run(claim(HOST, self.claim_port, cert, key, self.request(), 60))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.gateway.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=30) as resp:  # fmt: skip
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    process = Warm(tmp_path_factory.mktemp("warm"))
    try:
        yield process
    finally:
        process.stop()


def test_1_a_claim_with_another_key_is_refused_and_the_pod_keeps_waiting(warm: Warm) -> None:
    other_cert, other_key = new_keypair("dask-warm-other")
    # someone who knows the warm pod's (public) certificate but holds another key
    context = warmclaim.client_context(other_cert, other_key)
    context.load_verify_locations(cadata=warm.cert)
    with socket.create_connection((HOST, warm.claim_port), timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw) as conn:
                conn.sendall(warm.request().encode())
                assert conn.recv(100) == b""  # TLS 1.3: the refusal arrives on read
    # and a claimant who holds a key but does not pin this pod's certificate
    with pytest.raises(ClaimFailed, match="claim connection failed"):
        warm.claim(other_cert, other_key)
    assert warm.healthy() and warm.gateway.last() is None


def test_2_the_claim_starts_a_guarded_scheduler_with_the_delivered_credentials(warm: Warm) -> None:
    warm.claim(warm.cert, warm.key)  # returns once the scheduler's gateway API is up
    assert get(f"http://{HOST}:{warm.api_port}/api/health")[0] == 200
    beat = warm.gateway.wait_heartbeat(lambda hb: True, "a heartbeat with the delivered token")
    assert beat is not None
    dashboard = f"http://{HOST}:{warm.dashboard_port}/info/main/workers.html"
    assert get(dashboard)[0] == 401
    credential = dashboard_credential(warm.creds.api_token)
    assert get(dashboard, {HEADER: credential})[0] != 401


def test_3_a_second_claim_is_refused(warm: Warm) -> None:
    with pytest.raises(ClaimFailed, match="claim connection failed"):
        warm.claim(warm.cert, warm.key)
    assert warm.proc.poll() is None  # still the first claimant's scheduler


def test_4_credentials_are_private_files(warm: Warm) -> None:
    (directory,) = (warm.root / "tmp").glob("dask-claim-*")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = {p.name: p for p in directory.iterdir()}
    assert set(files) == {"tls.crt", "tls.key", "api-token"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files.values())
    assert files["api-token"].read_text() == warm.creds.api_token


def test_credential_files_are_created_exclusively(tmp_path: Path) -> None:
    target = tmp_path / "tls.key"
    os.symlink(tmp_path / "elsewhere", target)
    with pytest.raises(FileExistsError):
        private_files.write_new(target, "secret")
    assert not (tmp_path / "elsewhere").exists()
    plain = tmp_path / "token"
    private_files.write_new(plain, "one")
    with pytest.raises(FileExistsError):
        private_files.write_new(plain, "two")
    assert plain.read_text() == "one"


def test_claims_are_checked_before_use() -> None:
    with pytest.raises(WarmClaimError, match="lacks"):
        parse_warm_claim(b'{"cluster_name": "x"}')
    with pytest.raises(WarmClaimError, match="list of strings"):
        parse_warm_claim(
            b'{"cluster_name": "a", "api_url": "u", "api_token": "t", "tls_cert": "c",'
            b' "tls_key": "k", "args": "--port 1"}'
        )
    assert warm_pod.expand("$(POD_IP):8786 $$(POD_IP) $(NOPE)", {"POD_IP": "10.0.0.1"}) == (
        "10.0.0.1:8786 $(POD_IP) $(NOPE)"
    )


def test_the_controllers_claim_is_what_the_warm_pod_parses() -> None:
    creds = new_credentials("ns.roundtrip")
    sent = claim_message("ns.roundtrip", "http://api:8000", creds, ("--port", "8786"))
    line = sent.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_warm_claim(line) == sent
    for secret in (creds.api_token, creds.tls_key):
        assert secret not in repr(sent)
