"""Bind a DaskCluster to its owner's notebook pod, so Kubernetes ends it with the pod.

With the clusters in the notebook pods' namespace (as zero-to-jupyterhub runs
them), an ``ownerReference`` to the user's server pod lets the API server's
garbage collector delete the DaskCluster, and so its pods, when the notebook pod
goes, even while the gateway service is down. KubeSpawner labels server pods
``component=singleuser-server`` and annotates them with the raw hub user name.
"""

from __future__ import annotations

from typing import Any

from jhub_gateway.kube.client import PODS, KubeClient

SERVER_SELECTOR = "component=singleuser-server"
USERNAME_ANNOTATION = "hub.jupyter.org/username"
SERVERNAME_ANNOTATION = "hub.jupyter.org/servername"


def pick_server_pod(pods: list[dict[str, Any]], username: str) -> dict[str, Any] | None:
    """The user's default server pod, else one of their named servers, else None."""
    mine = [
        p
        for p in pods
        if ((p.get("metadata") or {}).get("annotations") or {}).get(USERNAME_ANNOTATION) == username
        and not (p.get("metadata") or {}).get("deletionTimestamp")
        and (p.get("metadata") or {}).get("uid")
    ]
    if not mine:
        return None
    mine.sort(
        key=lambda p: (
            bool((p["metadata"].get("annotations") or {}).get(SERVERNAME_ANNOTATION)),
            p["metadata"].get("creationTimestamp") or "",
        )
    )
    return mine[0]


def owner_reference(pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    # blockOwnerDeletion false: the notebook pod's deletion must never wait on ours
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta["name"],
        "uid": meta["uid"],
        "blockOwnerDeletion": False,
    }


async def server_pod_owner(
    client: KubeClient, namespace: str, username: str
) -> dict[str, Any] | None:
    """An ownerReference to ``username``'s notebook pod in ``namespace``, if it runs there."""
    pods, _ = await client.list(PODS, namespace, label_selector=SERVER_SELECTOR)
    pod = pick_server_pod(pods, username)
    return owner_reference(pod) if pod is not None else None
