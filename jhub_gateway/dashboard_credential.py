"""The per-cluster credential a scheduler's dashboard requires on every request.

Derived from the cluster token with a fixed label, so it differs from the API
token (a dashboard request that leaks it cannot drive ``/api/comm`` or send
heartbeats). The service's forward-auth hands it to Traefik in a response
header, Traefik copies it onto the proxied request (``authResponseHeaders``
replaces any same-named header the browser sent), and the scheduler runtime
refuses requests without it. Nothing else ever holds it: not Traefik's
configuration, not the browser.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Jhub-Gateway-Dashboard-Credential"
_LABEL = b"jhub-gateway dashboard credential v1"


def dashboard_credential(token: str) -> str:
    """The dashboard credential of the cluster whose API token is ``token``."""
    if not token:
        raise ValueError("a cluster without a token has no dashboard credential")
    return hmac.new(token.encode(), _LABEL, hashlib.sha256).hexdigest()
