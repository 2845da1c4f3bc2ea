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
from typing import Any

HEADER = "X-Jhub-Gateway-Dashboard-Credential"
#: the forward-auth endpoint, relative to the service prefix. Only Traefik's
#: forwardAuth calls it, on the service's internal address: the public API routes
#: (local Traefik config, the chart's api IngressRoute) exclude it, since its 200
#: carries the dashboard credential that must never reach a browser.
AUTH_PATH = "api/v1/dashboard-auth"
_LABEL = b"jhub-gateway dashboard credential v1"


def dashboard_credential(token: str) -> str:
    """The dashboard credential of the cluster whose API token is ``token``."""
    if not token:
        raise ValueError("a cluster without a token has no dashboard credential")
    return hmac.new(token.encode(), _LABEL, hashlib.sha256).hexdigest()


def forward_auth_spec(auth_url: str) -> dict[str, Any]:
    """Traefik's forwardAuth Middleware spec for dashboards, on either backend.

    The auth endpoint sees the caller's credentials; its 200 carries the
    dashboard credential, which Traefik copies onto the proxied request,
    replacing a same-named header the browser sent.
    """
    return {
        "forwardAuth": {
            "address": auth_url,
            "authRequestHeaders": ["Authorization", "Cookie", "Accept"],
            "authResponseHeaders": [HEADER],
        }
    }


def drop_credentials_spec() -> dict[str, Any]:
    """Traefik's headers Middleware spec that keeps the viewer's credentials from schedulers.

    A scheduler runs its user's code: the cookies (the hub's and ours) and the
    Authorization header of whoever opens the dashboard, an admin say, must not
    reach it. Forward-auth has read them already; an empty value deletes a header.
    """
    return {"headers": {"customRequestHeaders": {"Cookie": "", "Authorization": ""}}}
