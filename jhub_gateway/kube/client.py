"""The controller's only door to the Kubernetes API (the only module importing kubernetes_asyncio).

The controller works on plain JSON dicts for every kind (Pods, Secrets, the
DaskCluster CRD, Traefik routes, Leases), so instead of the generated typed
API classes this wraps ``ApiClient.call_api`` with generic verbs addressed by a
``Resource``. Authentication, TLS and kubeconfig handling stay those of the
unmodified client library. Every call first takes a token from one shared
``RateLimiter``; failures surface as the typed ``KubeError`` hierarchy so that
callers never inspect HTTP status codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from jhub_gateway import crd

from .ratelimit import RateLimiter

if TYPE_CHECKING:
    # Imported when a client connects, not with this module: kubernetes_asyncio's generated
    # package takes seconds of CPU to import, which every service start (and
    # ``--generate-config``) would pay although only the kubernetes backend needs it.
    from kubernetes_asyncio import client as k8s_client
    from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_JSON_TYPES = {200: "object", 201: "object", 202: "object"}
_TEXT_TYPES = {200: "str"}
RETRY_AFTER_MAX = 60.0  # never trust a server to park us longer than this per attempt


# -- errors --------------------------------------------------------------------


class KubeError(Exception):
    """An API call failed. ``status`` is the HTTP code (0 = no answer)."""

    def __init__(
        self, status: int, reason: str = "", message: str = "", retry_after: float | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409 on update: the resourceVersion precondition failed; re-read and retry."""


class AlreadyExists(KubeError):
    """409 on create: an object of that name exists already."""


class Invalid(KubeError):
    """400/422: the request itself is wrong; retrying it unchanged cannot help."""


class Forbidden(KubeError):
    """401/403: missing credentials or RBAC permission."""


class Gone(KubeError):
    """410: the resourceVersion is too old (compacted); the caller must relist."""


class Unavailable(KubeError):
    """429/5xx or no answer at all: transient, retry later (``retry_after`` if known)."""


_ERRORS: dict[int, type[KubeError]] = {
    400: Invalid, 401: Forbidden, 403: Forbidden, 404: NotFound,
    410: Gone, 422: Invalid, 429: Unavailable,
}  # fmt: skip


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP-date; treat as "soon"
        return 1.0


def _decode_status(body: Any) -> Obj:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str):
        try:
            body = json.loads(body) if body else {}
        except ValueError:
            return {"message": body[:500]}
    return body if isinstance(body, dict) else {}


def error_from_status(status: int, body: Any, headers: Any = None) -> KubeError:
    """The ``KubeError`` subclass for an HTTP status and its ``Status`` body."""
    decoded = _decode_status(body)
    reason = str(decoded.get("reason") or "")
    message = str(decoded.get("message") or "")
    cls: type[KubeError]
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    else:
        cls = _ERRORS.get(status, Unavailable if status >= 500 else KubeError)
    return cls(status, reason, message, _retry_after(headers))


def _api_exception() -> type[ApiException]:
    from kubernetes_asyncio.client.exceptions import ApiException

    return ApiException


def error_from_api_exception(exc: ApiException) -> KubeError:
    return error_from_status(int(exc.status or 0), exc.body, exc.headers)


# -- addressing ----------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One REST collection: ``Resource("", "v1", "pods")``, ``Resource("apps", "v1", ...)``."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        elif self.namespaced and name:
            raise ValueError(f"{self.plural} are namespaced: a namespace is required")
        root += f"/{self.plural}"
        if name:
            root += f"/{name}"
        if subresource:
            if not name:
                raise ValueError("a subresource needs an object name")
            root += f"/{subresource}"
        return root


PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
SECRETS = Resource("", "v1", "secrets")
CONFIGMAPS = Resource("", "v1", "configmaps")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
DASKCLUSTERS = Resource(crd.GROUP, crd.VERSION, crd.PLURAL)
INGRESSROUTES = Resource("traefik.io", "v1alpha1", "ingressroutes")
INGRESSROUTETCPS = Resource("traefik.io", "v1alpha1", "ingressroutetcps")
MIDDLEWARES = Resource("traefik.io", "v1alpha1", "middlewares")


# -- the client ----------------------------------------------------------------


class KubeClient:
    """Rate-limited raw-JSON verbs on any resource. Use as ``async with``, or ``close()``.

    ``max_retries`` bounds how often a 429 answer is retried after its
    ``Retry-After`` delay before ``Unavailable`` is raised to the caller.
    """

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        limiter: RateLimiter | None = None,
        request_timeout: float = 30.0,
        max_retries: int = 3,
    ) -> None:
        self.api = api_client
        self._api_exception = _api_exception()
        self.limiter = limiter or RateLimiter(rate=50, burst=100)
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        #: told (verb, status) after every request: "2xx", the error's code, or "none"
        #: when no answer came; for metrics
        self.on_response: Callable[[str, str], None] | None = None

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | Path | None = None,
        *,
        context: str | None = None,
        user_agent: str | None = None,
        **kwargs: Any,
    ) -> KubeClient:
        """From ``kubeconfig`` if given, else in-cluster when in a pod, else ``$KUBECONFIG``/~.

        ``user_agent`` names the caller in API server logs and audit (and lets a
        test server tell the controller's requests from the service's).
        """
        from kubernetes_asyncio import client as k8s_client
        from kubernetes_asyncio import config as k8s_config

        configuration = k8s_client.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            await k8s_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
            )
        api_client = k8s_client.ApiClient(configuration=configuration)
        if user_agent:
            api_client.user_agent = user_agent
        return cls(api_client, **kwargs)

    async def close(self) -> None:
        await self.api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport --------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        """One request with its JSON (or text) answer, retried on 429 after ``Retry-After``."""
        attempt = 0
        while True:
            await self.limiter.acquire()
            try:
                result = await self.api.call_api(
                    path,
                    method,
                    query_params=list((query or {}).items()),
                    header_params={
                        "Content-Type": content_type,
                        "Accept": "text/plain" if text else "application/json",
                    },
                    body=body,
                    auth_settings=["BearerToken"],
                    response_types_map=_TEXT_TYPES if text else _JSON_TYPES,
                    _return_http_data_only=True,
                    _request_timeout=self.request_timeout,
                )
            except self._api_exception as exc:
                error = error_from_api_exception(exc)
                self._observe(method, str(error.status))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self._observe(method, "none")
                raise Unavailable(0, type(exc).__name__, str(exc)) from exc
            else:
                self._observe(method, "2xx")
                return result
            attempt += 1
            if error.status != 429 or attempt > self.max_retries:
                raise error
            delay = min(RETRY_AFTER_MAX, error.retry_after or 1.0)
            log.info("API server throttling %s %s, retrying in %.1fs", method, path, delay)
            await asyncio.sleep(delay)

    def _observe(self, method: str, status: str) -> None:
        if self.on_response is not None:
            self.on_response(method, status)

    # -- verbs ------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self._call("GET", resource.path(namespace, name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[Obj], str]:
        """All matching objects (paged) and the list's resourceVersion to watch from.

        Items get ``kind``/``apiVersion`` filled in (list items omit them).
        """
        query = _selectors(label_selector, field_selector)
        query["limit"] = str(page_size)
        items: list[Obj] = []
        while True:
            page = await self._call("GET", resource.path(namespace), query=query)
            kind = str(page.get("kind", "")).removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", page.get("apiVersion", resource.api_version))
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            query["continue"] = meta["continue"]

    async def create(self, resource: Resource, body: Obj, namespace: str | None = None) -> Obj:
        namespace = namespace or body.get("metadata", {}).get("namespace")
        return await self._call("POST", resource.path(namespace), body=body)

    async def replace(
        self, resource: Resource, name: str, body: Obj, namespace: str | None = None
    ) -> Obj:
        """PUT; with ``metadata.resourceVersion`` set this fails with ``Conflict`` if stale."""
        return await self._call("PUT", resource.path(namespace, name), body=body)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
    ) -> Obj:
        """Merge patch (a dict), JSON patch (a list of operations) or strategic merge patch."""
        return await self._call(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=PATCH_CONTENT_TYPES[patch_type],
        )

    async def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
    ) -> Obj:
        return await self.patch(
            resource, name, patch, namespace, patch_type=patch_type, subresource="status"
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Background", "Foreground", "Orphan"] = "Background",
        grace_period_seconds: int | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Delete; returns the object (if deletion is pending) or a ``Status``."""
        options: Obj = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation_policy,
        }
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        return await self._call("DELETE", resource.path(namespace, name), body=options)

    async def delete_collection(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str,
        propagation_policy: Literal["Background", "Foreground", "Orphan"] = "Background",
    ) -> Obj:
        """Delete every object matching ``label_selector`` in one request (never unselected)."""
        if not label_selector:
            raise ValueError("delete_collection needs a label selector")
        options: Obj = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation_policy,
        }
        query = _selectors(label_selector, None)
        return await self._call("DELETE", resource.path(namespace), query=query, body=options)

    async def pod_log(
        self, name: str, namespace: str, *, tail_lines: int = 20, container: str | None = None
    ) -> str:
        """The last ``tail_lines`` lines a pod's container wrote (text, possibly empty)."""
        query = {"tailLines": str(tail_lines)}
        if container:
            query["container"] = container
        path = PODS.path(namespace, name, "log")
        return str(await self._call("GET", path, query=query, text=True) or "")

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """Stream ``(type, object)`` events until the server ends the watch.

        BOOKMARK events are yielded too (their object carries only the new
        resourceVersion). An expired ``resource_version`` raises ``Gone``
        whether the server answers 410 or sends an ERROR event. Consume it
        with ``contextlib.aclosing`` so that breaking out releases the stream.
        """
        query = _selectors(label_selector, field_selector)
        query.update(watch="true", timeoutSeconds=str(timeout_seconds))
        if resource_version:
            query["resourceVersion"] = resource_version
        if allow_bookmarks:
            query["allowWatchBookmarks"] = "true"
        # No total timeout: the server ends the stream after timeout_seconds; the
        # read timeout only catches a connection that went silent.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.request_timeout, sock_read=timeout_seconds + 30
        )
        resp = await self._open_stream(resource.path(namespace), query, timeout)
        try:
            async for event in _json_lines(resp):
                etype = str(event.get("type", ""))
                obj = event.get("object") or {}
                if etype == "ERROR":
                    raise error_from_status(int(obj.get("code") or 0), obj)
                yield etype, obj
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise Unavailable(0, type(exc).__name__, str(exc)) from exc
        finally:
            # An abandoned stream must close its connection, or the server keeps
            # the watch (and its connection) alive until it next writes.
            resp.close()

    async def _open_stream(
        self, path: str, query: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> Any:
        await self.limiter.acquire()
        try:
            resp = await self.api.call_api(
                path,
                "GET",
                query_params=list(query.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise Unavailable(0, type(exc).__name__, str(exc)) from exc
        if resp.status >= 300:
            try:
                body = await resp.read()
            finally:
                resp.release()
            raise error_from_status(resp.status, body, resp.headers)
        return resp


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    query: dict[str, str] = {}
    if label_selector:
        query["labelSelector"] = label_selector
    if field_selector:
        query["fieldSelector"] = field_selector
    return query


async def _json_lines(resp: Any) -> AsyncIterator[Obj]:
    """Decode a watch stream: one JSON document per line, lines of any length."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        # split once per chunk: peeling one line at a time copies the rest of a
        # large chunk (a burst of events) once per line
        lines = (buffer + chunk).split(b"\n")
        buffer = lines.pop()
        for line in lines:
            if line.strip():
                yield _decode_event(line)
    if buffer.strip():
        yield _decode_event(buffer)


def _decode_event(line: bytes) -> Obj:
    try:
        event = json.loads(line)
    except ValueError as exc:
        raise Unavailable(0, "MalformedWatchEvent", line[:200].decode(errors="replace")) from exc
    if not isinstance(event, dict):
        raise Unavailable(0, "MalformedWatchEvent", line[:200].decode(errors="replace"))
    return event
