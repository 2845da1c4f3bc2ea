"""Delete a release's DaskClusters and Middlewares before ``helm uninstall`` removes the controller.

``python -m jhub_gateway.hub_service.release_cleanup INSTANCE NAMESPACE...`` runs
as the chart's pre-delete hook. DaskClusters are made by the api, not by Helm, so
``helm uninstall`` alone would leave them (and the Services, Secrets and routes
they own) behind with nobody to clean up, and so would the controller's
per-namespace dashboard Middlewares. Deleting the clusters lets the garbage
collector remove what they own; the program waits until none is listed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from jhub_gateway.crd import GROUP, LABEL_UPSTREAM_INSTANCE, PLURAL, VERSION
from jhub_gateway.kube.client import MIDDLEWARES, KubeClient, KubeError, NotFound, Resource

__all__ = ["DASKCLUSTERS", "delete_clusters", "main"]

log = logging.getLogger("jhub_gateway.release_cleanup")

DASKCLUSTERS = Resource(GROUP, VERSION, PLURAL)
WAIT_SECONDS = 60.0


async def delete_clusters(
    client: KubeClient, instance: str, namespaces: list[str], wait: float = WAIT_SECONDS
) -> int:
    """Delete every DaskCluster and Middleware of ``instance``; returns the clusters left."""
    selector = f"{LABEL_UPSTREAM_INSTANCE}={instance}"
    deadline = time.monotonic() + wait
    while True:
        left = 0
        for ns in namespaces:
            items, _ = await client.list(DASKCLUSTERS, ns, label_selector=selector)
            for item in items:
                left += 1
                if item["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await client.delete(DASKCLUSTERS, item["metadata"]["name"], ns)
                    log.info("deleted DaskCluster %s/%s", ns, item["metadata"]["name"])
                except NotFound:
                    pass
            middlewares, _ = await client.list(MIDDLEWARES, ns, label_selector=selector)
            for item in middlewares:
                try:
                    await client.delete(MIDDLEWARES, item["metadata"]["name"], ns)
                except NotFound:
                    pass
        if left == 0 or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.5)


async def _run(instance: str, namespaces: list[str]) -> int:
    async with await KubeClient.connect() as client:
        try:
            left = await delete_clusters(client, instance, namespaces)
        except KubeError as exc:
            log.error("could not delete the release's DaskClusters: %s", exc)
            return 1
    if left:
        log.error("%d DaskCluster(s) of %s still present", left, instance)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit(
            "usage: python -m jhub_gateway.hub_service.release_cleanup INSTANCE NAMESPACE..."
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(asyncio.run(_run(args[0], args[1:])))


if __name__ == "__main__":
    main()
