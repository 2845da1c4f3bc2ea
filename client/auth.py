"""Client-side authentication schemes for the gateway's HTTP API.

The protocol is upstream's challenge/response: a request without credentials
gets a 401, then ``pre_request(resp)`` supplies headers for a single retry and
``post_response`` checks the answer. Schemes that need no challenge (a hub
token) also offer ``initial_headers()`` so the first request already carries
credentials and the 401 round trip is skipped.
"""

from __future__ import annotations

import base64
import getpass
import importlib
import os
import re
from typing import Any

import dask.config

from .config import format_template
from .errors import GatewayAuthError

__all__ = ["BasicAuth", "GatewayAuth", "JupyterHubAuth", "KerberosAuth", "get_auth"]

Headers = dict[str, str]


class GatewayAuth:
    """Base class for authentication schemes.

    Subclasses written for upstream dask-gateway work unchanged: ``pre_request``
    may return either a headers dict or a ``(headers, context)`` tuple.
    """

    def __init__(self, **kwargs: Any) -> None:
        pass

    def initial_headers(self) -> Headers | None:
        """Headers to send on a first request, before any challenge (None = wait for 401)."""
        return None

    def pre_request(self, resp: Any) -> Headers | tuple[Headers, Any]:
        """Build the headers that answer the 401 response ``resp``."""
        return {}, None

    def post_response(self, resp: Any, context: Any = None) -> None:
        """Inspect the response to the authenticated retry (e.g. mutual auth)."""


class BasicAuth(GatewayAuth):
    """HTTP Basic credentials; username defaults to the local user, password to empty."""

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username if username is not None else getpass.getuser()
        self.password = password if password is not None else ""

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r})"

    def _header(self) -> Headers:
        raw = f"{self.username}:{self.password}".encode("latin1")
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def pre_request(self, resp: Any) -> tuple[Headers, None]:
        return self._header(), None


class JupyterHubAuth(GatewayAuth):
    """A JupyterHub API token, by default ``$JUPYTERHUB_API_TOKEN``."""

    def __init__(self, api_token: str | None = None) -> None:
        if api_token is None:
            api_token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not api_token:
            raise ValueError(
                "No JupyterHub API token given and the JUPYTERHUB_API_TOKEN environment "
                "variable is not set (are you running inside a JupyterHub server?)"
            )
        self.api_token = api_token

    def __repr__(self) -> str:
        # Never show the token itself.
        return "JupyterHubAuth(api_token=<hidden>)"

    def _header(self) -> Headers:
        return {"Authorization": "jupyterhub " + self.api_token}

    def initial_headers(self) -> Headers:
        return self._header()

    def pre_request(self, resp: Any) -> tuple[Headers, None]:
        return self._header(), None


class KerberosAuth(GatewayAuth):
    """SPNEGO (``Negotiate``) with the ``kerberos``/``pykerberos`` module."""

    _negotiate = re.compile(r"(?:^|,)\s*Negotiate\s+([^,\s]+)", re.IGNORECASE)

    def __init__(self) -> None:
        self._kerberos = _import_kerberos()

    def pre_request(self, resp: Any) -> tuple[Headers, Any]:
        krb = self._kerberos
        host = resp.url.host
        _, context = krb.authGSSClientInit(
            f"HTTP@{host}", gssflags=krb.GSS_C_MUTUAL_FLAG | krb.GSS_C_SEQUENCE_FLAG
        )
        krb.authGSSClientStep(context, "")
        token = krb.authGSSClientResponse(context)
        return {"Authorization": "Negotiate " + token}, context

    def post_response(self, resp: Any, context: Any = None) -> None:
        if context is None or resp.status >= 400:
            # Failures are reported by the caller's status mapping.
            return
        match = self._negotiate.search(resp.headers.get("WWW-Authenticate", ""))
        if match is None:
            raise GatewayAuthError("Kerberos negotiation failed: server sent no mutual-auth token")
        self._kerberos.authGSSClientStep(context, match.group(1))


def _import_kerberos() -> Any:
    try:
        return importlib.import_module("kerberos")
    except ImportError:
        raise ImportError(
            "KerberosAuth needs the 'kerberos' module: pip install pykerberos "
            "(or 'kerberos'), which also needs the system GSSAPI/krb5 libraries"
        ) from None


_BUILTIN: dict[str, type[GatewayAuth]] = {
    "basic": BasicAuth,
    "jupyterhub": JupyterHubAuth,
    "kerberos": KerberosAuth,
}


def _import_object(path: str) -> Any:
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(
            f"unknown auth type {path!r}: use one of {sorted(_BUILTIN)} or a dotted class path"
        )
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:
        raise ImportError(f"cannot import auth class {path!r}: {module} has no {name}") from None


def get_auth(auth: Any = None) -> GatewayAuth:
    """Resolve ``auth`` into a ``GatewayAuth`` instance.

    Accepts an instance (returned as is), a name (``basic``, ``jupyterhub``,
    ``kerberos``), a dotted class path, or a class/callable; None reads
    ``gateway.auth.type``. Classes get ``gateway.auth.kwargs`` (templated).
    """
    if isinstance(auth, GatewayAuth):
        return auth
    if auth is None:
        auth = dask.config.get("gateway.auth.type", None) or "basic"
    if isinstance(auth, str):
        factory = _BUILTIN.get(auth.strip().lower()) or _import_object(auth.strip())
    elif callable(auth):
        factory = auth
    else:
        raise TypeError(f"auth must be a GatewayAuth, a name or a class, got {auth!r}")
    kwargs = dask.config.get("gateway.auth.kwargs", None) or {}
    instance = factory(**{k: format_template(v) for k, v in kwargs.items()})
    if not isinstance(instance, GatewayAuth):
        raise TypeError(f"auth must produce a GatewayAuth instance, got {instance!r}")
    return instance


def split_pre_request(result: Any) -> tuple[Headers, Any]:
    """Normalise ``pre_request``'s return value to ``(headers, context)``."""
    if isinstance(result, tuple) and len(result) == 2:
        return dict(result[0] or {}), result[1]
    return dict(result or {}), None
