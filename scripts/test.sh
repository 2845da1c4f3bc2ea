#!/usr/bin/env bash
# The whole suite from a fresh machine: set up, lint, type-check, layering, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy -p jhub_gateway
lint-imports
exec pytest -n "${PYTEST_WORKERS:-3}" --dist loadscope -p no:cacheprovider "$@"
