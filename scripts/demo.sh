#!/usr/bin/env bash
# Fresh machine -> JupyterHub + jhub-gateway (hub-managed) + Traefik + local clusters,
# then an example computation through the hub's /services/dask-gateway/ URL.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_CHROMIUM=1 bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python examples/run_demo.py "$@"
