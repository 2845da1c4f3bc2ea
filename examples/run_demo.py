"""Start JupyterHub with jhub-gateway as a hub-managed service and run the example.

Used by ``scripts/demo.sh``. Everything listens on 127.0.0.1; state goes to ``.demo/``.
The stack stays up until Ctrl-C (``--once`` exits after the example).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE = "dask-gateway"


def api(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
    return json.loads(text) if text else {}


def wait_http(url: str, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"JupyterHub exited while waiting for {what}; see .demo/jupyterhub.log"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:  # refused, or an error status while routes are still being added
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s; see .demo/jupyterhub.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the example")
    parser.add_argument(
        "--hub-port", type=int, default=int(os.environ.get("JHUB_DEMO_HUB_PORT", 8000))
    )
    parser.add_argument(
        "--gateway-port", type=int, default=int(os.environ.get("JHUB_DEMO_GATEWAY_PORT", 8001))
    )
    parser.add_argument("--workdir", default=".demo")
    args = parser.parse_args()

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(exist_ok=True)
    admin_token = secrets.token_hex(32)
    env = dict(os.environ)
    env.update(
        JHUB_DEMO_HUB_PORT=str(args.hub_port),
        JHUB_DEMO_GATEWAY_PORT=str(args.gateway_port),
        JHUB_DEMO_DATA_DIR=str(workdir / "gateway-data"),
        JHUB_DEMO_ADMIN_TOKEN=admin_token,
    )
    hub_url = f"http://127.0.0.1:{args.hub_port}"
    log = open(workdir / "jupyterhub.log", "ab")
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py")],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"{hub_url}/hub/api/", 90, hub, "JupyterHub")
        users = f"{hub_url}/hub/api/users"
        try:
            api(f"{users}/demo", admin_token, "POST")
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # already exists from an earlier run
                raise
        token = api(
            f"{users}/demo/tokens",
            admin_token,
            "POST",
            {
                "note": "jhub-gateway demo",
                "expires_in": 3600,
                "scopes": [f"access:services!service={SERVICE}", "read:users:name!user=demo"],
            },
        )["token"]
        gateway_url = f"{hub_url}/services/{SERVICE}"
        wait_http(f"{gateway_url}/api/health", 90, hub, "the gateway service")
        print(f"JupyterHub at {hub_url} (user 'demo', password 'demo'); gateway at {gateway_url}/")
        example_env = dict(os.environ)
        example_env.update(
            JUPYTERHUB_API_TOKEN=token,
            DASK_GATEWAY__ADDRESS=gateway_url,
            DASK_GATEWAY__PROXY_ADDRESS=f"gateway://127.0.0.1:{args.gateway_port}",
        )
        result = subprocess.run(
            [sys.executable, str(HERE / "example_computation.py")], env=example_env
        )
        if result.returncode != 0:
            raise SystemExit(f"the example failed with exit code {result.returncode}")
        if not args.once:
            print("Stack is up; press Ctrl-C to stop.")
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop(hub)
        print("stopped")


def stop(hub: subprocess.Popen) -> None:
    """Stop the hub; it stops its proxy and the gateway service. Kill what outlives it."""
    import psutil

    family = psutil.Process(hub.pid).children(recursive=True) if hub.poll() is None else []
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(30)
    except subprocess.TimeoutExpired:
        hub.kill()
    _, alive = psutil.wait_procs(family, timeout=10)
    for proc in alive:
        proc.kill()


if __name__ == "__main__":
    main()
