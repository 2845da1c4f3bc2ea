"""Per-cluster TLS credentials for scheduler, worker and client traffic.

Each cluster gets one self-signed certificate that is at once the CA, the
scheduler's, the workers' and the clients' certificate, so holding the key is
what admits a process to the cluster (mutual TLS). The cluster name is a SAN,
which lets tools tell clusters apart; hostname checks stay off because Traefik
routes by SNI ``daskgateway-<name>`` and pods move between addresses.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

__all__ = ["CERT_FILENAME", "KEY_FILENAME", "new_keypair", "tls_env", "write_credentials"]

CERT_FILENAME = "dask.crt"
KEY_FILENAME = "dask.pem"
INTERNAL_NAME = "dask-internal"
VALIDITY = datetime.timedelta(days=365)
# Tolerate small clock differences between the service and the nodes.
BACKDATE = datetime.timedelta(hours=1)


def new_keypair(cluster_name: str) -> tuple[str, str]:
    """Return ``(cert_pem, key_pem)`` for a new cluster.

    EC P-256 keeps generation around a millisecond (RSA-2048 costs tens of ms
    to seconds on a loaded node), and both Python's ``ssl`` and distributed
    accept it.
    """
    # cryptography is a server extra: the client and the scheduler runtime never mint keys.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not cluster_name:
        raise ValueError("cluster_name must be non-empty")
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INTERNAL_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    # The extensions a strict verifier (Python >= 3.13 sets VERIFY_X509_STRICT)
    # demands of a certificate that is both a CA and a leaf.
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(cluster_name), x509.DNSName(INTERNAL_NAME)]),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def _write_private(path: Path, data: str) -> None:
    # Create with 0600 from the start so the key is never briefly world-readable,
    # and fix the mode too when the file already existed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def write_credentials(directory: str | os.PathLike[str], cert: str, key: str) -> tuple[str, str]:
    """Write the PEMs into ``directory`` (created 0700 if missing) as 0600 files.

    Blocking file I/O: call it from a thread when on an event loop.
    """
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path = path / CERT_FILENAME
    key_path = path / KEY_FILENAME
    _write_private(cert_path, cert)
    _write_private(key_path, key)
    return str(cert_path), str(key_path)


def tls_env(cert_path: str, key_path: str) -> dict[str, str]:
    """Environment that makes a dask scheduler/worker/client use the cluster credentials."""
    prefix = "DASK_DISTRIBUTED__COMM__"
    env = {f"{prefix}TLS__CA_FILE": cert_path}
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        env[f"{prefix}TLS__{role}__CERT"] = cert_path
        env[f"{prefix}TLS__{role}__KEY"] = key_path
    env[f"{prefix}REQUIRE_ENCRYPTION"] = "True"
    return env
