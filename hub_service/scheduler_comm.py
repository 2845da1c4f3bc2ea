"""Messages from the service to a cluster's scheduler (``/api/comm``)."""

from __future__ import annotations

import asyncio
import json
import logging

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jhub_gateway.models import Cluster

from .errors import Conflict

log = logging.getLogger("jhub_gateway.hub_service")


async def send_to_scheduler(
    api_url: str, cluster: Cluster, message: dict, *, attempts: int = 3
) -> None:
    """POST ``message`` to the scheduler, retrying briefly.

    An unreachable scheduler is a 409 for this request only; unlike upstream we
    do not fail the cluster over it (its health is judged by heartbeats and the
    process/pod state).
    """
    client = AsyncHTTPClient()
    delay = 0.1
    last_error = ""
    for attempt in range(attempts):
        try:
            await client.fetch(
                api_url.rstrip("/") + "/api/comm",
                method="POST",
                body=json.dumps(message),
                headers={
                    "Authorization": f"token {cluster.token}",
                    "Content-Type": "application/json",
                },
                request_timeout=10,
            )
            return
        except HTTPClientError as exc:
            if exc.code == 422:
                detail = exc.response.body.decode(errors="replace") if exc.response else ""
                raise Conflict(
                    f"the scheduler refused the request: {detail}", reason="scheduler_refused"
                ) from None
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = exc.strerror or type(exc).__name__
        log.info(
            "scheduler of %s not reachable (attempt %d): %s", cluster.name, attempt + 1, last_error
        )
        await asyncio.sleep(delay)
        delay *= 2
    raise Conflict(
        f"cluster {cluster.name}'s scheduler is not reachable ({last_error}); try again shortly",
        reason="scheduler_unreachable",
    )
