"""Who is asking and may they: authentication + RBAC per request, tokens, reviews.

Glue between the HTTP router and :mod:`auth`/:mod:`rbac`. Also serves the kinds
that exist only as requests: ``serviceaccounts/token`` (TokenRequest, what
``kubectl create token`` and the kubelet call), ``selfsubjectaccessreviews``
(``kubectl auth can-i``), ``selfsubjectrulesreviews``, ``selfsubjectreviews``
(``kubectl auth whoami``), ``subjectaccessreviews`` and ``tokenreviews``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .auth import ADMIN, SA_KEY, Authenticator, User
from .rbac import Attributes, Authorizer, request_verb
from .resources import ResourceType

POD_KEY = ("", "pods")
USER_KEY = web.RequestKey("kube_user", User)
MIN_EXPIRATION = 600


class Access:
    def __init__(self, store: Any, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self.authn = Authenticator(store)
        self.authz = Authorizer(store)

    def user(self, request: web.Request) -> User:
        if USER_KEY not in request:
            header = request.headers.get("Authorization", "")
            if not self.enabled or (not header and not request.secure):
                # Like kube-apiserver's old insecure port: the plain-HTTP listener
                # trusts requests without credentials (client-go sends no bearer
                # token over http). A token, if sent, is checked as usual.
                request[USER_KEY] = ADMIN
            else:
                request[USER_KEY] = self.authn.authenticate(
                    request.headers.get("Authorization", "")
                )
        return request[USER_KEY]

    def _check(self, request: web.Request, attrs: Attributes, what: str) -> None:
        user = self.user(request)
        if not self.enabled or self.authz.allowed(user, attrs):
            return
        raise errors.ApiError(403, "Forbidden", f'{what}: User "{user.name}" {attrs.describe()}',
                              {"name": attrs.name, "kind": attrs.resource} if attrs.is_resource
                              else None)  # fmt: skip

    def check_path(self, request: web.Request) -> None:
        verb = request.method.lower() if request.method != "HEAD" else "get"
        self._check(request, Attributes(verb=verb, path=request.path), "forbidden")

    def check_resource(
        self, request: web.Request, rt: ResourceType, ns: str | None, name: str | None,
        sub: str | None,
    ) -> None:  # fmt: skip
        watch = request.query.get("watch", "").lower() in ("true", "1")
        attrs = Attributes(
            verb=request_verb(request.method, name is not None, watch),
            namespace=ns or "", api_group=rt.group, resource=rt.plural,
            subresource=sub or "", name=name or "",
        )  # fmt: skip
        what = f'{rt.qualified} "{name}" is forbidden' if name else f"{rt.qualified} is forbidden"
        self._check(request, attrs, what)

    # -- TokenRequest -------------------------------------------------------------

    def token_request(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        sa = self.store.get(SA_KEY, ns, name)
        if sa is None:
            raise errors.not_found("serviceaccounts", name)
        spec = dict(body.get("spec") or {})
        expiration = int(spec.get("expirationSeconds") or 3600)
        if expiration < MIN_EXPIRATION:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", name, [errors.cause(
                "spec.expirationSeconds", f"Invalid value: {expiration}: may not specify a "
                "duration less than 10 minutes")])  # fmt: skip
        bound = spec.get("boundObjectRef")
        if bound:
            if bound.get("kind") != "Pod":
                raise errors.bad_request("boundObjectRef: only Pod is supported by the emulator")
            pod = self.store.get(POD_KEY, ns, bound.get("name", ""))
            if pod is None:
                raise errors.not_found("pods", bound.get("name", ""))
            bound = dict(bound, uid=pod["metadata"]["uid"])
        token, expiry = self.authn.issue(sa, spec.get("audiences"), expiration, bound)
        spec["expirationSeconds"] = expiration
        spec.setdefault("audiences", [])
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},  # fmt: skip
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": expiry},
        }

    # -- reviews ------------------------------------------------------------------

    def review(self, request: web.Request, rt: ResourceType, body: dict[str, Any]) -> dict:
        user = self.user(request)
        spec = dict(body.get("spec") or {})
        out = {"kind": rt.kind, "apiVersion": rt.api_version,
               "metadata": {"creationTimestamp": None}, "spec": spec}  # fmt: skip
        if rt.plural == "selfsubjectreviews":
            out["status"] = {"userInfo": user.info()}
        elif rt.plural == "tokenreviews":
            try:
                who = self.authn.authenticate("Bearer " + str(spec.get("token", "")))
                out["status"] = {
                    "authenticated": who.name != "system:anonymous",
                    "user": who.info(),
                    "audiences": spec.get("audiences") or [],
                }
            except errors.ApiError as exc:
                out["status"] = {"authenticated": False, "error": exc.message}
        elif rt.plural == "selfsubjectrulesreviews":
            rules = self.authz.rules_for(user, spec.get("namespace", ""))
            resource = [r for r in rules if r.get("resources")]
            other = [r for r in rules if r.get("nonResourceURLs")]
            out["status"] = {"resourceRules": resource, "nonResourceRules": other,
                             "incomplete": False}  # fmt: skip
        else:
            subject = user
            if rt.plural == "subjectaccessreviews":
                subject = User(spec.get("user", ""), tuple(spec.get("groups") or []))
            ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
            if ra:
                attrs = Attributes(
                    verb=ra.get("verb", ""), namespace=ra.get("namespace", ""),
                    api_group=ra.get("group", ""), resource=ra.get("resource", ""),
                    subresource=ra.get("subresource", ""), name=ra.get("name", ""),
                )  # fmt: skip
            else:
                attrs = Attributes(
                    verb=(nra or {}).get("verb", ""), path=(nra or {}).get("path", "")
                )
            allowed = self.authz.allowed(subject, attrs)
            out["status"] = {"allowed": allowed}
            if allowed:
                out["status"]["reason"] = "allowed by RBAC"
        return out
