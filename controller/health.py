"""The controller's health endpoint, for liveness and readiness probes.

``/healthz`` (liveness) answers 200 while the informers are running: they
retry API failures themselves, so a dead one means a stuck process that a
restart fixes. ``/readyz`` (readiness) answers 200 once every informer has
synced its initial list. Both return a small JSON body saying why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler


class _Probe(RequestHandler):
    def initialize(self, check: Callable[[], dict[str, Any]]) -> None:
        self.check = check

    def get(self) -> None:
        result = self.check()
        self.set_status(200 if result.get("ok") else 503)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))


class _Metrics(RequestHandler):
    def initialize(
        self, render: Callable[[], bytes], may_scrape: Callable[[str | None], bool]
    ) -> None:
        self.render_metrics = render
        self.may_scrape = may_scrape

    def get(self) -> None:
        if not self.may_scrape(self.request.headers.get("Authorization")):
            self.set_status(403)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({
                "error": "forbidden",
                "message": "metrics need 'Authorization: Bearer <metrics_token>' "
                "(KubeController.metrics_token) or KubeController.metrics_public = True",
            }))  # fmt: skip
            return
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.render_metrics())


class HealthServer:
    def __init__(
        self,
        live: Callable[[], dict[str, Any]],
        ready: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes] | None = None,
        may_scrape: Callable[[str | None], bool] = lambda header: False,
    ) -> None:
        routes: list[Any] = [
            (r"/healthz", _Probe, {"check": live}),
            (r"/readyz", _Probe, {"check": ready}),
        ]
        if metrics is not None:
            routes.append((r"/metrics", _Metrics, {"render": metrics, "may_scrape": may_scrape}))
        app = Application(
            routes,
            # Probes every few seconds would flood the log.
            log_function=lambda handler: None,
        )
        self._server = HTTPServer(app)
        self.port = 0

    def listen(self, host: str, port: int) -> int:
        sockets = bind_sockets(port, address=host or None)
        self._server.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        self._server.stop()
        await self._server.close_all_connections()
