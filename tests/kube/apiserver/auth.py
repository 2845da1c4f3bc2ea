"""Authentication: the kubeconfig's admin token and ServiceAccount tokens (JWTs).

* ``ADMIN_TOKEN`` (the kubeconfig's) is user ``emulator-admin`` in ``system:masters``
  (cluster-admin, never checked against RBAC, as in a real cluster).
* ServiceAccount tokens are signed JWTs (HS256 with a per-emulator key) carrying the
  claims a real API server puts in bound tokens (``sub``
  ``system:serviceaccount:<ns>:<name>``, ``aud``, ``exp``, ``kubernetes.io``). They
  are valid while unexpired and while the ServiceAccount (same uid) and, for
  pod-bound tokens, the pod still exist.
* No token is ``system:anonymous`` (group ``system:unauthenticated``); a token that
  does not verify is 401 Unauthorized.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from . import errors

ADMIN_TOKEN = "emulator-token"
ADMIN_USER = "emulator-admin"
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = ISSUER
SA_KEY = ("", "serviceaccounts")
POD_KEY = ("", "pods")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) for ServiceAccount users."""
        parts = self.name.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            return parts[2], parts[3]
        return None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra
        return out


ADMIN = User(ADMIN_USER, ("system:masters", "system:authenticated"))
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sa_user(ns: str, name: str, uid: str = "") -> User:
    return User(
        f"system:serviceaccount:{ns}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
        uid,
    )


class Authenticator:
    def __init__(self, store: Any) -> None:
        self.store = store
        self._key = secrets.token_bytes(32)
        self._kid = hashlib.sha256(self._key).hexdigest()[:16]

    def issue(
        self,
        sa: dict[str, Any],
        audiences: list[str] | None = None,
        expiration: int = 3600,
        bound: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """A token for ServiceAccount ``sa``; returns (token, RFC 3339 expiry)."""
        meta = sa["metadata"]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audiences or [AUDIENCE],
            "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
            "iat": now,
            "nbf": now,
            "exp": now + expiration,
            "kubernetes.io": {
                "namespace": meta["namespace"],
                "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
            },
        }
        if bound and bound.get("kind") == "Pod":
            claims["kubernetes.io"]["pod"] = {"name": bound["name"], "uid": bound.get("uid", "")}
        header = _b64(json.dumps({"alg": "HS256", "kid": self._kid, "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))
        return f"{header}.{payload}.{_b64(signature)}", expiry

    def authenticate(self, authorization: str) -> User:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if not authorization:
            return ANONYMOUS
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized()
        if hmac.compare_digest(token, ADMIN_TOKEN):
            return ADMIN
        return self._verify(token)

    def _verify(self, token: str) -> User:
        parts = token.split(".")
        if len(parts) != 3:
            raise _unauthorized()
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            ok = hmac.compare_digest(_unb64(parts[2]), expected)
            claims = json.loads(_unb64(parts[1])) if ok else {}
        except ValueError:
            raise _unauthorized() from None
        if not ok or claims.get("exp", 0) < time.time():
            raise _unauthorized()
        kube = claims.get("kubernetes.io") or {}
        ns, sa = kube.get("namespace", ""), (kube.get("serviceaccount") or {})
        live = self.store.get(SA_KEY, ns, sa.get("name", ""))
        if live is None or live["metadata"]["uid"] != sa.get("uid"):
            raise _unauthorized()
        pod = kube.get("pod")
        if pod:
            live_pod = self.store.get(POD_KEY, ns, pod.get("name", ""))
            if live_pod is None or live_pod["metadata"]["uid"] != pod.get("uid"):
                raise _unauthorized()
        return sa_user(ns, sa["name"], sa.get("uid", ""))


def _unauthorized() -> errors.ApiError:
    return errors.ApiError(401, "Unauthorized", "Unauthorized")
