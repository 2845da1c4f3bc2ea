"""The per-cluster Secret: TLS certificate and key, and the scheduler's api token."""

from __future__ import annotations

import base64
from typing import Any

from .labels import cluster_labels, secret_name
from .ownership import object_meta
from .spec import ClusterSpec

__all__ = ["API_TOKEN_KEY", "TLS_CERT_KEY", "TLS_KEY_KEY", "build_secret"]

TLS_CERT_KEY = "tls.crt"
TLS_KEY_KEY = "tls.key"
API_TOKEN_KEY = "api-token"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def build_secret(
    spec: ClusterSpec, *, tls_cert: str, tls_key: str, api_token: str
) -> dict[str, Any]:
    """Secret ``dask-credentials-<name>``; the caller mints the PEMs and the token."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(spec, secret_name(spec.name), cluster_labels(spec)),
        "type": "Opaque",
        # Credentials never change for a cluster's life; immutable spares the
        # kubelets a watch per mounted Secret.
        "immutable": True,
        "data": {
            TLS_CERT_KEY: _b64(tls_cert),
            TLS_KEY_KEY: _b64(tls_key),
            API_TOKEN_KEY: _b64(api_token),
        },
    }
