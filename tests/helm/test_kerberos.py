"""Kerberos (SPNEGO) authentication against a real KDC with a keytab.

The module starts its own MIT KDC in a temp dir on a random port, a user
principal and an HTTP service key (keytab), then a real jhub-gateway with
``--auth kerberos``; the upstream client's ``KerberosAuth`` (pykerberos) and a
SPNEGO token from python-gssapi (what browsers and requests-gssapi send) both
authenticate. The KDC and the gateway are gone afterwards.
"""

from __future__ import annotations

import base64
import os

import gssapi
import pytest
from dask_gateway import Gateway

from tests.gatewaytools import running_gateway

from .kdc import REALM, start_kdc

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    root = tmp_path_factory.mktemp("kdc")
    kdc = start_kdc(root)
    saved = {k: os.environ.get(k) for k in kdc.env if k != "PATH"}
    # the gateway subprocess and this process's GSSAPI library read the same realm config
    os.environ.update({k: v for k, v in kdc.env.items() if k != "PATH"})
    try:
        kdc.add_user("alice", "alice-password")
        kdc.add_service("HTTP/127.0.0.1", root / "http.keytab")
        kdc.add_service("postgres/127.0.0.1", root / "other.keytab")
        kdc.kinit("alice", "alice-password")
        yield kdc
    finally:
        kdc.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def gateway(kdc, tmp_path_factory):
    root = tmp_path_factory.mktemp("gw-kerberos")
    config = f"c.KerberosAuthenticator.keytab = {str(kdc.root / 'http.keytab')!r}\n"
    with running_gateway(root, extra_config=config, args=["--auth", "kerberos"]) as gw:
        yield gw


def negotiate(service: str, mech: gssapi.OID | None = None) -> str:
    name = gssapi.Name(service, gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=name, usage="initiate", mech=mech)
    return "Negotiate " + base64.b64encode(ctx.step()).decode()


def test_upstream_client_kerberos_auth_lists_clusters(gateway) -> None:
    # pykerberos, exactly as upstream's KerberosAuth uses it, incl. mutual auth
    with Gateway(gateway.address, auth="kerberos") as gw:
        assert gw.list_clusters() == []


def test_spnego_token_names_the_user_without_realm(gateway) -> None:
    spnego = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")
    status, body = gateway.request(
        "GET", "/api/v1/users/me", headers={"Authorization": negotiate("HTTP@127.0.0.1", spnego)}
    )
    assert status == 200, body
    assert body["name"] == "alice"


def test_missing_header_challenges_negotiate(gateway) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(gateway.address + "/api/v1/clusters/")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Negotiate")


@pytest.mark.parametrize(
    "header",
    [
        "Negotiate",
        "Negotiate !!!not-base64",
        "Negotiate " + base64.b64encode(b"junk").decode(),
        "Basic eDp5",
    ],
)
def test_bad_tokens_are_401_with_a_reason(gateway, header) -> None:
    status, body = gateway.request("GET", "/api/v1/clusters/", headers={"Authorization": header})
    assert status == 401
    assert body["error"] == "unauthorized"
    assert body["message"]


def test_token_for_another_service_is_refused(gateway) -> None:
    # a valid ticket, but for a key the gateway's keytab does not hold
    status, body = gateway.request(
        "GET", "/api/v1/clusters/", headers={"Authorization": negotiate("postgres@127.0.0.1")}
    )
    assert status == 401
    assert "Kerberos token rejected" in body["message"]


def test_realm_is_the_test_realm(kdc) -> None:
    creds = gssapi.Credentials(usage="initiate")
    assert str(creds.name) == f"alice@{REALM}"
