"""Kerberos (SPNEGO, ``Authorization: Negotiate``) authentication with a keytab.

What the upstream client's ``KerberosAuth`` sends: a GSSAPI initiator token for
``HTTP@<host>`` (raw Kerberos or SPNEGO-wrapped; both are accepted). The token
is accepted with the service key from the keytab, the user is the initiator's
principal without its realm, and the acceptor's reply token goes back in
``WWW-Authenticate: Negotiate <token>`` for clients that check mutual auth.
Accepting needs no KDC round trip, only the keytab. Requires the ``gssapi``
package (extra ``kerberos``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from typing import TYPE_CHECKING, Any

from traitlets import Unicode, validate

from jhub_gateway.models import User

from ..errors import Unauthorized
from .base import Authenticator

if TYPE_CHECKING:
    from tornado.web import RequestHandler

_MAX_TOKEN = 64 * 1024  # Kerberos tickets with large PACs stay well under this


class KerberosAuthenticator(Authenticator):
    """Authenticates ``Negotiate`` tokens against the service keys of a keytab."""

    challenge = "Negotiate"

    keytab = Unicode(
        "http.keytab",
        help="""Path of the keytab holding the service's keys (HTTP/<host>@REALM).

        The Helm chart mounts it from a Secret at /etc/jhub-gateway-kerberos/http.keytab.""",
        config=True,
    )
    service_name = Unicode(
        "HTTP",
        help="""Service part of the principal clients ask for (HTTP, as browsers and the
        dask-gateway client use). Tokens for another service are refused.""",
        config=True,
    )
    hostname = Unicode(
        "",
        help="""Host part of the service principal to accept (HTTP/<hostname>@REALM).

        Empty accepts a key of ``service_name`` for any host in the keytab: behind a
        load balancer the name clients use is rarely the pod's hostname.""",
        config=True,
    )

    @validate("service_name")
    def _check_service(self, proposal: dict) -> str:
        value = proposal["value"]
        if not value or "@" in value or "/" in value:
            raise ValueError(f"service_name must be a bare service such as HTTP, got {value!r}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials: Any = None

    def _acquire(self) -> Any:
        import gssapi

        if not os.path.isfile(self.keytab):
            raise ValueError(f"KerberosAuthenticator.keytab {self.keytab!r} is not a file")
        name = None
        if self.hostname:
            name = gssapi.Name(
                f"{self.service_name}@{self.hostname}", gssapi.NameType.hostbased_service
            )
        # the credential store names the keytab without touching KRB5_KTNAME for the process
        return gssapi.Credentials(
            name=name, usage="accept", store={"keytab": os.path.abspath(self.keytab)}
        )

    async def setup(self) -> None:
        try:
            import gssapi  # noqa: F401
        except ImportError:
            raise ValueError(
                "Kerberos authentication needs the gssapi package: pip install 'jhub-gateway[kerberos]'"
            ) from None
        self._credentials = await asyncio.to_thread(self._acquire)

    def _accept(self, token: bytes) -> tuple[str, str, bytes | None]:
        import gssapi

        if self._credentials is None:
            self._credentials = self._acquire()
        try:
            context = gssapi.SecurityContext(creds=self._credentials, usage="accept")
            reply = context.step(token)
            # python-gssapi raises a failed step's error lazily, from these attributes
            complete = context.complete
            principal = str(context.initiator_name) if complete else ""
            target = str(context.target_name or "") if complete else ""
        except gssapi.exceptions.GSSError as exc:
            # the GSS message (expired ticket, wrong key...) helps the user; no secret in it
            raise Unauthorized(f"Kerberos token rejected: {exc.gen_message()}") from None
        if not complete:
            raise Unauthorized("Kerberos negotiation needs more than one round; not supported")
        return principal, target, reply

    async def authenticate(self, handler: RequestHandler) -> User:
        header = handler.request.headers.get("Authorization")
        if not header:
            raise Unauthorized("authentication required (Kerberos: Authorization: Negotiate)")
        scheme, _, encoded = header.partition(" ")
        encoded = encoded.strip()
        if scheme.lower() != "negotiate" or not encoded:
            raise Unauthorized("expected an 'Authorization: Negotiate <token>' header")
        if len(encoded) > _MAX_TOKEN:
            raise Unauthorized("Negotiate token too large")
        try:
            token = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise Unauthorized("malformed Negotiate token (not base64)") from None
        principal, target, reply = await asyncio.to_thread(self._accept, token)
        service = target.split("/", 1)[0].split("@", 1)[0]
        if target and service != self.service_name:
            raise Unauthorized(
                f"Kerberos token is for service {service!r}, not {self.service_name!r}"
            )
        if reply:
            handler.set_header("WWW-Authenticate", "Negotiate " + base64.b64encode(reply).decode())
        username = principal.split("@", 1)[0]
        if not username:
            raise Unauthorized("Kerberos principal has no user name")
        return User(name=username)
