"""Per-cluster credentials: a TLS keypair and an API token, minted once per cluster."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from jhub_gateway.tls import new_keypair


@dataclass(frozen=True)
class ClusterCredentials:
    tls_cert: str
    tls_key: str
    api_token: str

    def __repr__(self) -> str:
        # Never let key material or the token reach a log line via repr().
        return "ClusterCredentials(<redacted>)"


def new_credentials(cluster_name: str) -> ClusterCredentials:
    """Mint fresh credentials; the reconciler calls this only when no Secret exists."""
    cert, key = new_keypair(cluster_name)
    # 32 bytes hex: the same entropy the scheduler runtime expects of a bearer token.
    return ClusterCredentials(tls_cert=cert, tls_key=key, api_token=secrets.token_hex(32))
