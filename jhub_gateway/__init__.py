"""jhub-gateway: per-user Dask clusters for JupyterHub."""

__version__ = "0.1.0"
