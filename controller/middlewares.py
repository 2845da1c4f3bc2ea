"""The three dashboard Middlewares every IngressRoute of a namespace shares.

Forward-auth to the api service (dashboards stay authenticated: owner or
admin), one that drops the caller's cookies and Authorization header before
the request reaches the user's scheduler, and a strip-prefix regex. They are instance objects, not a cluster's:
created once per namespace when its first cluster is reconciled, patched when
the controller's configuration changed them, never owned by a DaskCluster.
A same-named Middleware without our instance labels is foreign: the informer
never shows it, our create answers AlreadyExists, and we leave it alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jhub_gateway.kube.client import MIDDLEWARES, AlreadyExists

from .builders import (
    build_drop_credentials_middleware,
    build_forward_auth_middleware,
    build_strip_prefix_middleware,
)
from .cache import ClusterCache
from .protocols import ApiClient
from .settings import ControllerSettings

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class SharedMiddlewares:
    def __init__(self, client: ApiClient, cache: ClusterCache, settings: ControllerSettings
                 ) -> None:  # fmt: skip
        self.client = client
        self.cache = cache
        self.settings = settings
        self._sent: dict[tuple[str, str], tuple[float, Any]] = {}  # (ns, name) -> (when, spec)

    def desired(self, namespace: str) -> list[Obj]:
        s = self.settings
        return [
            build_forward_auth_middleware(s.instance, namespace, s.dashboard_auth_url),
            build_drop_credentials_middleware(s.instance, namespace),
            build_strip_prefix_middleware(s.instance, namespace, s.route_prefix),
        ]

    async def ensure(self, namespace: str) -> None:
        for body in self.desired(namespace):
            name = body["metadata"]["name"]
            current = self.cache.middleware(namespace, name)
            if current is not None and current.get("spec") == body["spec"]:
                continue
            sent = self._sent.get((namespace, name))
            if sent and sent[1] == body["spec"] and time.monotonic() - sent[0] < 60:
                continue  # written already; the informer has not caught up yet
            # Marked before the call: the other reconcile workers of this namespace's
            # clusters must not send the same create while this one is in flight.
            self._sent[(namespace, name)] = (time.monotonic(), body["spec"])
            try:
                if current is None:
                    await self.client.create(MIDDLEWARES, body, namespace)
                else:
                    await self.client.patch(MIDDLEWARES, name, {"spec": body["spec"]},
                                            namespace)  # fmt: skip
            except AlreadyExists:
                log.debug("middleware %s/%s exists (foreign or not cached yet)", namespace, name)
            except BaseException:
                self._sent.pop((namespace, name), None)  # not written: the next reconcile retries
                raise
