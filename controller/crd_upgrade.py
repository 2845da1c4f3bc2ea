"""Bring the chart's CRDs up to date when the controller starts.

Helm installs a chart's ``crds/`` on the first install only and never upgrades
them (so upstream's users ``kubectl apply`` Traefik's CRDs by hand on every
bump). The chart mounts the same files into the controller pod, which rolls
whenever they change, and the controller merge-patches each CRD's ``spec`` to
the file's before its informers start, so an upgrade is one ``helm upgrade``.
Doing it in the controller process, not an init container, spares a second
Python start per rollout. Its ClusterRole allows get/patch on exactly these
CRD names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from jhub_gateway.kube.client import KubeClient, NotFound, Resource

__all__ = ["CRDS", "CrdUpgradeError", "apply_all", "load_crds", "upgrade_crds"]

log = logging.getLogger("jhub_gateway.controller.crd_upgrade")

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)


class CrdUpgradeError(RuntimeError):
    """The CRDs could not be brought up to date (the message says what to fix)."""


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
        log.debug("CRD %s is up to date", name)
    return missing


async def upgrade_crds(client: KubeClient, directory: Path) -> int:
    """Patch the CRDs found in ``directory``; how many. Raises CrdUpgradeError."""
    crds = load_crds(directory)
    if not crds:
        raise CrdUpgradeError(f"no CustomResourceDefinition found in {directory}")
    missing = await apply_all(client, crds)
    if missing:
        # Helm creates them from crds/ at install; gone means someone deleted them
        raise CrdUpgradeError(
            f"CRDs missing (reinstall the chart to create them): {', '.join(missing)}"
        )
    log.info("%d CRDs up to date from %s", len(crds), directory)
    return len(crds)
