"""Notebook-side client: Gateway, GatewayCluster, auth, gateway:// comm."""
