"""A real MIT Kerberos KDC in a temporary directory, on a random port (tests only)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.gatewaytools import free_port
from tests.polling import wait_for

REALM = "JHUB-GATEWAY.TEST"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kdestroy")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not found:
        raise RuntimeError(
            f"{name} not found: install Debian's krb5-kdc krb5-admin-server krb5-user "
            "(scripts/bootstrap.sh does)"
        )
    return found


@dataclass
class KDC:
    root: Path
    port: int
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [_tool(args[0]), *args[1:]],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def add_user(self, name: str, password: str) -> None:
        self.run("kadmin.local", "-q", f"addprinc -pw {password} {name}")

    def add_service(self, principal: str, keytab: Path) -> None:
        self.run("kadmin.local", "-q", f"addprinc -randkey {principal}")
        self.run("kadmin.local", "-q", f"ktadd -k {keytab} {principal}")

    def kinit(self, name: str, password: str) -> None:
        self.run("kinit", f"{name}@{REALM}", stdin=password + "\n")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_kdc(root: Path) -> KDC:
    """Create a realm's database under ``root`` and start its KDC (no fork)."""
    port = free_port()
    (root / "krb5.conf").write_text(
        f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{port}
    }}
[domain_realm]
    127.0.0.1 = {REALM}
    localhost = {REALM}
"""
    )
    (root / "kdc.conf").write_text(
        f"""[kdcdefaults]
    kdc_ports = {port}
    kdc_tcp_ports = {port}
[realms]
    {REALM} = {{
        database_name = {root}/principal
        key_stash_file = {root}/stash
        acl_file = {root}/kadm5.acl
        max_life = 1h
    }}
[logging]
    kdc = FILE:{root}/kdc.log
"""
    )
    (root / "kadm5.acl").write_text("")
    env = {
        "PATH": os.environ.get("PATH", "") + ":/usr/sbin",
        "KRB5_CONFIG": str(root / "krb5.conf"),
        "KRB5_KDC_PROFILE": str(root / "kdc.conf"),
        "KRB5CCNAME": f"FILE:{root}/ccache",
        "KRB5RCACHEDIR": str(root),
    }
    kdc = KDC(root=root, port=port, env=env)
    kdc.run("kdb5_util", "create", "-s", "-r", REALM, "-P", "master-password")
    log = open(root / "krb5kdc.out", "wb")
    kdc.proc = subprocess.Popen(
        [_tool("krb5kdc"), "-n", "-r", REALM, "-P", str(root / "kdc.pid")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    def listening() -> bool:
        if kdc.proc is not None and kdc.proc.poll() is not None:
            raise RuntimeError(f"krb5kdc exited: {(root / 'krb5kdc.out').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_for(listening, timeout=20, interval=0.05, what="krb5kdc listening")
    except BaseException:
        kdc.stop()
        raise
    return kdc
