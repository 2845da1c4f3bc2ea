"""Kubernetes controller: reconciles ``DaskCluster`` resources into Secrets,
Pods, Services and Traefik routes (DESIGN §5).

Only this package and the service's kube backend talk to kubernetes_asyncio;
:mod:`.builders` is pure (spec in, manifests out) and imports no API client.
"""
