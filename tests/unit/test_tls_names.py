"""TLS credentials (real handshakes in memory) and cluster names/slugs."""

from __future__ import annotations

import re
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from jhub_gateway.names import is_valid_cluster_name, new_cluster_name, safe_slug
from jhub_gateway.tls import new_keypair, tls_env, write_credentials


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str, str]:
    cert, key = new_keypair("ns.0123abcd")
    cert_path, key_path = write_credentials(tmp_path_factory.mktemp("tls") / "sub", cert, key)
    return cert, key, cert_path, key_path


def test_certificate_is_ec_ca_with_cluster_sans(creds: tuple[str, str, str, str]) -> None:
    cert = x509.load_pem_x509_certificate(creds[0].encode())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["ns.0123abcd", "dask-internal"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_keypairs_are_distinct() -> None:
    assert new_keypair("a")[1] != new_keypair("a")[1]


def test_empty_cluster_name_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        new_keypair("")


def test_files_are_private(creds: tuple[str, str, str, str]) -> None:
    for path in creds[2:]:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(creds[2]).parent.stat().st_mode) == 0o700
    assert Path(creds[2]).read_text() == creds[0]


def _context(side: int, cert_path: str, key_path: str, strict: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(side)
    ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cert_path)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False
    if strict:
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


@pytest.mark.parametrize("strict", [False, True])
def test_mutual_tls_handshake(creds: tuple[str, str, str, str], strict: bool) -> None:
    # Both peers use the one certificate as CA and as their own, like scheduler and client.
    server_ctx = _context(ssl.PROTOCOL_TLS_SERVER, *creds[2:], strict)
    client_ctx = _context(ssl.PROTOCOL_TLS_CLIENT, *creds[2:], strict)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname="daskgateway-ns.0123abcd")
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, conn, out_bio, peer_in in (
            ("client", client, bios[3], bios[0]),
            ("server", server, bios[1], bios[2]),
        ):
            if not done[name]:
                try:
                    conn.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out_bio.read())
        if all(done.values()):
            break
    assert all(done.values())
    assert server.getpeercert()["subject"] == ((("commonName", "dask-internal"),),)


def test_a_foreign_certificate_is_refused(creds: tuple[str, str, str, str], tmp_path: Path) -> None:
    cert, key = new_keypair("other")
    other = write_credentials(tmp_path, cert, key)
    server_ctx = _context(ssl.PROTOCOL_TLS_SERVER, *creds[2:], False)
    client_ctx = _context(ssl.PROTOCOL_TLS_CLIENT, *other, False)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3])
    with pytest.raises(ssl.SSLError):
        for _ in range(10):
            for conn, out_bio, peer_in in ((client, bios[3], bios[0]), (server, bios[1], bios[2])):
                try:
                    conn.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                peer_in.write(out_bio.read())


def test_tls_env() -> None:
    env = tls_env("/c.crt", "/k.pem")
    p = "DASK_DISTRIBUTED__COMM__"
    assert env[p + "TLS__CA_FILE"] == "/c.crt"
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        assert env[f"{p}TLS__{role}__CERT"] == "/c.crt"
        assert env[f"{p}TLS__{role}__KEY"] == "/k.pem"
    assert env[p + "REQUIRE_ENCRYPTION"] == "True"
    assert len(env) == 8


def test_new_cluster_name() -> None:
    names = {new_cluster_name() for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert re.fullmatch(r"[0-9a-f]{32}", name)
        assert is_valid_cluster_name(name)


@pytest.mark.parametrize("name", ["0123abcd", "default.0123abcd", "my-ns.abc", "a", "a" * 63])
def test_valid_cluster_names(name: str) -> None:
    assert is_valid_cluster_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ABC",
        "a/b",
        "../etc",
        "a..b",
        ".a",
        "a.",
        "a.b.c",
        "-a",
        "a-",
        "a b",
        "a`b",
        "a%2fb",
        "a\n",
        "a" * 64,
        "daskgateway-é",
        None,
        123,
    ],
)
def test_invalid_cluster_names(name: object) -> None:
    assert not is_valid_cluster_name(name)


LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


@pytest.mark.parametrize("text", ["alice", "a-b", "user1"])
def test_slug_keeps_valid_labels(text: str) -> None:
    assert safe_slug(text) == text


@pytest.mark.parametrize(
    "text", ["Alice", "alice@example.com", "a.lice", "---", "", "Ünïcode user", "x" * 100, "a_"]
)
def test_slug_of_unsafe_text(text: str) -> None:
    slug = safe_slug(text)
    assert LABEL.fullmatch(slug) and len(slug) <= 63
    assert slug == safe_slug(text)  # deterministic
    assert slug != text


def test_slugs_do_not_collide_and_respect_length() -> None:
    slugs = {safe_slug(t) for t in ["Alice", "alice", "ALICE", "a.lice", "a_lice"]}
    assert len(slugs) == 5
    slug = safe_slug("Some.Very.Long.Name" * 5, max_length=20)
    assert len(slug) <= 20 and LABEL.fullmatch(slug)
    assert safe_slug("Alice").startswith("alice-")


def test_slug_length_too_small() -> None:
    with pytest.raises(ValueError, match="max_length"):
        safe_slug("x", max_length=5)
