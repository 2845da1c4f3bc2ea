"""A local demo hub with jhub-gateway as a hub-managed service.

Run it with ``python examples/run_demo.py`` (or ``jupyterhub -f examples/jupyterhub_config.py``
from a scratch directory). Everything listens on 127.0.0.1. Log in with any user
name and the demo password; never expose this configuration beyond a laptop.

Environment knobs (all optional):
  JHUB_DEMO_HUB_PORT       public hub port (default 8000)
  JHUB_DEMO_GATEWAY_PORT   the gateway's Traefik port (default 8001)
  JHUB_DEMO_HUB_API_PORT   the hub's internal API port (default 8081)
  JHUB_DEMO_PROXY_API_PORT configurable-http-proxy's API port (default 8082)
  JHUB_DEMO_DATA_DIR       gateway state directory (default ./gateway-data)
  JHUB_DEMO_PASSWORD       the shared demo password (default "demo")
  JHUB_DEMO_ADMIN_TOKEN    if set, an admin API token (used by run_demo.py to create users)
"""

import hmac
import os
import sys
from pathlib import Path

from jupyterhub.auth import DummyAuthenticator

from jhub_gateway.hub_templates import TEMPLATE_PATH

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

SERVICE = "dask-gateway"
HUB_PORT = int(os.environ.get("JHUB_DEMO_HUB_PORT", "8000"))
GATEWAY_PORT = int(os.environ.get("JHUB_DEMO_GATEWAY_PORT", "8001"))
HUB_API_PORT = int(os.environ.get("JHUB_DEMO_HUB_API_PORT", "8081"))
PROXY_API_PORT = int(os.environ.get("JHUB_DEMO_PROXY_API_PORT", "8082"))
DATA_DIR = os.path.abspath(os.environ.get("JHUB_DEMO_DATA_DIR", "gateway-data"))
DEMO_PASSWORD = os.environ.get("JHUB_DEMO_PASSWORD", "demo")
ADMIN_TOKEN = os.environ.get("JHUB_DEMO_ADMIN_TOKEN", "")
ACCESS_SCOPE = f"access:services!service={SERVICE}"


class DemoPasswordAuthenticator(DummyAuthenticator):
    """Any user name with one shared password: a laptop demo, nothing more.

    (JupyterHub's SharedPasswordAuthenticator wants >= 8 characters; the demo
    password is deliberately short and printed by run_demo.py.)
    """

    async def authenticate(self, handler, data):
        password = (data.get("password") or "").encode()
        if hmac.compare_digest(password, DEMO_PASSWORD.encode()):
            return data["username"]
        return None


c.JupyterHub.authenticator_class = DemoPasswordAuthenticator
c.Authenticator.allow_all = True
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = HUB_PORT
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_API_PORT
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
# configurable-http-proxy installed with `npm install --prefix $VIRTUAL_ENV/chp ...`, if present
_chp = Path(sys.prefix) / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
if _chp.exists():
    c.ConfigurableHTTPProxy.command = [str(_chp)]
c.JupyterHub.cleanup_servers = True
# notebook servers run as the hub's own OS user (there are no system accounts for demo users)
c.JupyterHub.spawner_class = "simple"

c.JupyterHub.services = [
    {
        "name": SERVICE,
        # the gateway's Traefik: the hub proxy forwards /services/dask-gateway/ here
        "url": f"http://127.0.0.1:{GATEWAY_PORT}",
        "display": True,  # listed in the hub's Services menu for users holding the scope
        "oauth_no_confirm": True,
        "command": [
            sys.executable,
            "-m",
            "jhub_gateway.hub_service",
            "--auth",
            "jupyterhub",
            "--backend",
            "local",
            "--address",
            f"127.0.0.1:{GATEWAY_PORT}",
            "--data-dir",
            DATA_DIR,
            "--log-level",
            "INFO",
        ],
    },
]

c.JupyterHub.load_roles = [
    # every user keeps the default `self` permissions and may use the gateway
    {"name": "user", "scopes": ["self", ACCESS_SCOPE]},
    # what the gateway may read from the hub (user servers, for lifecycle binding and admin views)
    {
        "name": "dask-gateway-service",
        "scopes": ["list:users", "read:users:groups", "read:servers"],
        "services": [SERVICE],
    },
]

# the hub's pages link to the gateway's: "Dask clusters" in the navbar, and for admins
# "All Dask clusters" in the navbar and on the hub's admin page
c.JupyterHub.template_paths = [TEMPLATE_PATH]
c.JupyterHub.template_vars = {"dask_gateway_url": f"/services/{SERVICE}/"}

if ADMIN_TOKEN:
    c.JupyterHub.services.append({"name": "demo-admin", "api_token": ADMIN_TOKEN})
    c.JupyterHub.load_roles.append({"name": "admin", "services": ["demo-admin"]})

# notebook tokens: JupyterHub's defaults plus the gateway, so `Gateway(auth="jupyterhub")` works
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", ACCESS_SCOPE]
# preset the gateway address in notebooks, as the upstream dask-gateway client expects
c.Spawner.environment = {
    "DASK_GATEWAY__ADDRESS": f"http://127.0.0.1:{HUB_PORT}/services/{SERVICE}",
    "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{GATEWAY_PORT}",
    "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
}
