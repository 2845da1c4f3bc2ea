# The scheduler and worker image: ghcr.io/jhub-gateway/jhub-gateway-cluster:<version>.
# The controller gives only args (dask scheduler ... / dask worker ...), so tini,
# the entrypoint, is the init process that reaps workers' children and forwards
# signals. Build from the repository root (see docker/README.md).
ARG PYTHON=3.11

FROM python:${PYTHON}-slim-bookworm AS build
ARG VERSION
RUN test -n "$VERSION" || (echo "pass --build-arg VERSION=<package version>" && exit 1)
WORKDIR /src
COPY . .
RUN python - <<'PY'
import os, tomllib
version = tomllib.load(open("pyproject.toml", "rb"))["project"]["version"]
assert version == os.environ["VERSION"], f"pyproject.toml says {version}, VERSION is {os.environ['VERSION']}"
PY
# the base install is the client plus the cluster runtime (dask, distributed);
# bokeh serves the dashboard the gateway proxies
RUN pip wheel --no-cache-dir --wheel-dir /wheels . "bokeh>=3.1"

FROM python:${PYTHON}-slim-bookworm
ARG VERSION
LABEL org.opencontainers.image.title="jhub-gateway-cluster" \
      org.opencontainers.image.version="${VERSION}"
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "jhub-gateway==${VERSION}" bokeh \
 && rm -rf /wheels
# uid 1000 as the controller's pods run (ClusterSpec.run_as_user)
RUN useradd --uid 1000 --create-home --shell /bin/bash dask
USER 1000
WORKDIR /home/dask
ENTRYPOINT ["tini", "-g", "--"]
CMD ["dask", "scheduler", "--help"]
