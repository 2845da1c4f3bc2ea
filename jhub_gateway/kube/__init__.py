"""The Kubernetes API layer shared by the controller and the service's kubernetes backend.

Both build on it and neither imports the other. Only :mod:`.client` imports
kubernetes_asyncio; everything else here works on plain JSON dicts.
"""
