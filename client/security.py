"""TLS credentials for one cluster, held in memory only.

Each cluster has one self-signed certificate that is CA, scheduler and client
certificate at once (upstream's scheme). Python's ``ssl`` can take CA data from
memory but wants file paths for the key pair, so on Linux we hand it an
anonymous in-memory file (memfd); elsewhere a private temp dir that is deleted
before this function returns.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any

from distributed.security import Security


class GatewaySecurity(Security):
    """A distributed ``Security`` built from the PEM strings a gateway hands out."""

    def __init__(self, tls_key: str, tls_cert: str) -> None:
        super().__init__(require_encryption=True)
        self.tls_key = tls_key
        self.tls_cert = tls_cert
        self._context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        # Never render key material (notebooks echo reprs).
        return "GatewaySecurity<...>"

    def _repr_html_(self) -> str:
        return "GatewaySecurity&lt;...&gt;"

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.tls_cert)
            # The peer is identified by the per-cluster CA, not by host name:
            # traffic arrives through a proxy under an SNI alias.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_REQUIRED
            # Honour distributed.comm.tls.{min-version,ciphers} like Security does.
            min_version = getattr(self, "tls_min_version", None)
            if min_version is not None:
                ctx.minimum_version = min_version
            ciphers = getattr(self, "tls_ciphers", None)
            if ciphers:
                ctx.set_ciphers(ciphers)
            _load_key_pair(ctx, self.tls_cert, self.tls_key)
            self._context = ctx
        return self._context

    def get_connection_args(self, role: str) -> dict[str, Any]:
        return {
            "ssl_context": self._ssl_context(),
            "require_encryption": True,
            "extra_conn_args": self.extra_conn_args,
        }

    def get_listen_args(self, role: str) -> dict[str, Any]:
        raise NotImplementedError("GatewaySecurity is for connecting to a gateway cluster only")


def _load_key_pair(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    if hasattr(os, "memfd_create"):
        fds = []
        try:
            for name, data in (("cert", cert_pem), ("key", key_pem)):
                fd = os.memfd_create(f"jhub-gateway-{name}", getattr(os, "MFD_CLOEXEC", 0))
                fds.append(fd)
                os.write(fd, data.encode())
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
            return
        except (FileNotFoundError, PermissionError):
            # /proc may be unavailable (some sandboxes): fall through to a temp dir.
            pass
        finally:
            for fd in fds:
                os.close(fd)
    with tempfile.TemporaryDirectory(prefix="jhub-gateway-tls-") as tmp:
        cert_path = os.path.join(tmp, "tls.crt")
        key_path = os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(data)
        ctx.load_cert_chain(cert_path, key_path)
