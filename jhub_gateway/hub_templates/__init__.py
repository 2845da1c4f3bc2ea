"""Templates that add the gateway's pages to JupyterHub's own (navbar link, admin page link).

Use them with::

    from jhub_gateway.hub_templates import TEMPLATE_PATH
    c.JupyterHub.template_paths = [TEMPLATE_PATH]
    c.JupyterHub.template_vars = {"dask_gateway_url": "/services/dask-gateway/"}

``dask_gateway_url`` is where the hub's proxy serves the service (default
``<hub base_url>../services/dask-gateway/``).
"""

from pathlib import Path

TEMPLATE_PATH = str(Path(__file__).resolve().parent)

__all__ = ["TEMPLATE_PATH"]
