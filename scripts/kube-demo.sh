#!/usr/bin/env bash
# One command for a local gateway on Kubernetes (the emulator of tests/kube, RBAC on,
# pods as local processes): starts the emulator, installs helm/jhub-gateway with the
# Helm SDK (`helm upgrade --install --wait` into namespace dask-gateway), prints
# `kubectl get service` and the EXTERNAL-IP gateway address, then runs until Ctrl-C.
#
#   scripts/kube-demo.sh                 # simple auth, password "demo"
#   scripts/kube-demo.sh my-config.yaml  # your own values (a config.yaml as in the install guide)
#
# Then, from another shell with the same venv:
#   python -c 'from dask_gateway import Gateway, BasicAuth;
#              g = Gateway("http://<EXTERNAL-IP>", auth=BasicAuth("alice", "demo"));
#              print(g.new_cluster())'
# Needs the venv of scripts/bootstrap.sh (Helm SDK, Traefik, kubectl on PATH); run as root
# so pods get their service-account mounts (see tests/kube/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$PY"):$PATH"
exec "$PY" -m tests.helm.demo "$@"
