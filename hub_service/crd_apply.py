"""Bring the chart's CRDs up to date: ``python -m jhub_gateway.hub_service.crd_apply DIR``.

Helm installs a chart's ``crds/`` on the first install only and never upgrades
them (so upstream's users ``kubectl apply`` Traefik's CRDs by hand on every
bump). The chart mounts the same files into an init container of the
controller pod, which rolls on every change of them; this program
merge-patches each CRD's ``spec`` to the file's, so an upgrade is one
``helm upgrade``. Its ClusterRole allows get/patch on exactly these CRD names.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from jhub_gateway.kube.client import KubeClient, KubeError, NotFound, Resource

__all__ = ["CRDS", "apply_all", "load_crds", "main"]

log = logging.getLogger("jhub_gateway.crd_apply")

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``directory/*.yaml``, in file order."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
    return found


async def apply_all(client: KubeClient, crds: list[dict[str, Any]]) -> list[str]:
    """Patch each existing CRD's spec to ``crds``; returns the names that are missing."""
    missing = []
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            # merge patch: the file's spec (versions list included) replaces the stored one
            await client.patch(CRDS, name, {"spec": crd["spec"]}, patch_type="merge")
        except NotFound:
            missing.append(name)
            continue
        log.info("CRD %s is up to date", name)
    return missing


async def _run(directory: Path) -> int:
    crds = load_crds(directory)
    if not crds:
        log.error("no CustomResourceDefinition found in %s", directory)
        return 2
    async with await KubeClient.connect() as client:
        try:
            missing = await apply_all(client, crds)
        except KubeError as exc:
            log.error("could not update CRDs: %s", exc)
            return 1
    if missing:
        # Helm creates them from crds/ at install; gone means someone deleted them
        log.error("CRDs missing (reinstall the chart to create them): %s", ", ".join(missing))
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m jhub_gateway.hub_service.crd_apply DIRECTORY")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(asyncio.run(_run(Path(args[0]))))


if __name__ == "__main__":
    main()
