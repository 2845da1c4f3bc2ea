#!/usr/bin/env bash
# Set up everything a fresh machine needs: a venv with the project and its test/bench
# extras, configurable-http-proxy from npm, and Debian's Chromium for browser tests.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# a real KDC for the Kerberos tests, and the headers gssapi builds against
if ! command -v krb5kdc >/dev/null 2>&1 || [ ! -e /usr/include/gssapi/gssapi.h ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq krb5-kdc krb5-admin-server krb5-user libkrb5-dev >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import jhub_gateway.hub_service, dask_gateway, kubernetes_asyncio, playwright, gssapi" 2>/dev/null \
   || [ pyproject.toml -nt "$VENV/.installed" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -U pip setuptools wheel
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[server,kube,kerberos,test,bench]'
  touch "$VENV/.installed"
fi

CHP="$VENV/chp/node_modules/.bin/configurable-http-proxy"
if [ ! -x "$CHP" ]; then
  mkdir -p "$VENV/chp"
  npm install --silent --no-audit --no-fund --prefix "$VENV/chp" configurable-http-proxy@5 >/dev/null
fi
ln -sf "$(realpath "$CHP")" "$VENV/bin/configurable-http-proxy"

if [ "${SKIP_CHROMIUM:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "bootstrap: ready ($VENV)"
