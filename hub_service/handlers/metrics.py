"""``/metrics`` for Prometheus, readable by a scraper the operator allowed."""

from __future__ import annotations

from jhub_gateway.bearer import bearer_token

from ..errors import Forbidden, Unauthorized
from ..metrics import CONTENT_TYPE, ServiceMetrics
from .base import BaseHandler

#: the hub's own scope for reading metrics; a service may honour it for its own
METRICS_SCOPE = "read:metrics"


class MetricsHandler(BaseHandler):
    async def get(self) -> None:
        metrics: ServiceMetrics = self.settings["metrics"]
        header = self.request.headers.get("Authorization")
        if not metrics.may_scrape(bearer_token(header)):
            if header is None and self.sessions.read(self) is None:
                raise Unauthorized(
                    f"metrics need a JupyterHub token with the {METRICS_SCOPE} scope "
                    "or the configured metrics bearer token"
                )
            if not await self.settings["authenticator"].has_scope(self, METRICS_SCOPE):
                raise Forbidden(
                    f"reading metrics needs the {METRICS_SCOPE} scope", reason="missing_scope"
                )
        metrics.refresh(self.clusters.census())
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(metrics.render())


handlers = [(r"metrics", MetricsHandler)]
