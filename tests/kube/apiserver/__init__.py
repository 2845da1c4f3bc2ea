"""A Kubernetes API server emulator for tests (DESIGN §7).

Speaks the real REST protocol (discovery, OpenAPI v3 index, CRUD, list/watch with
resourceVersions and 410, selectors, JSON/merge/strategic/apply patches, status
and scale subresources, CRDs with structural-schema validation and printer
columns, ownerReference GC, finalizers, Deployments -> ReplicaSets -> Pods) so
that unmodified kubectl, kubernetes_asyncio and Traefik work against it.
"""

from .cluster import KubeCluster, launch, start_emulator
from .server import Emulator, write_kubeconfig

__all__ = ["Emulator", "KubeCluster", "launch", "start_emulator", "write_kubeconfig"]
