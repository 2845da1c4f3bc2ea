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


class HealthServer:
    def __init__(self, live: Callable[[], dict[str, Any]], ready: Callable[[], dict[str, Any]]
                 ) -> None:  # fmt: skip
        app = Application(
            [
                (r"/healthz", _Probe, {"check": live}),
                (r"/readyz", _Probe, {"check": ready}),
            ]
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
