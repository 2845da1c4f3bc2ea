# The api and controller image: ghcr.io/jhub-gateway/jhub-gateway:<version>.
# The chart always gives the command (jhub-gateway / jhub-gateway-controller /
# python -m jhub_gateway.hub_service.release_cleanup). Build from the repository
# root (see docker/README.md); VERSION must equal the package version.
ARG PYTHON=3.11

FROM python:${PYTHON}-slim-bookworm AS build
ARG VERSION
RUN test -n "$VERSION" || (echo "pass --build-arg VERSION=<package version>" && exit 1)
# gssapi (the kerberos extra) builds against the Kerberos headers
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libkrb5-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python - <<'PY'
import os, tomllib
version = tomllib.load(open("pyproject.toml", "rb"))["project"]["version"]
assert version == os.environ["VERSION"], f"pyproject.toml says {version}, VERSION is {os.environ['VERSION']}"
PY
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server,kube,kerberos]"

FROM python:${PYTHON}-slim-bookworm
ARG VERSION
LABEL org.opencontainers.image.title="jhub-gateway" \
      org.opencontainers.image.version="${VERSION}"
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgssapi-krb5-2 tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
# exactly this version of the package, its extras from the wheels built above
RUN pip install --no-cache-dir --no-index --find-links /wheels "jhub-gateway[server,kube,kerberos]==${VERSION}" \
 && rm -rf /wheels
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin gateway \
 && mkdir -p /var/lib/jhub-gateway && chown gateway /var/lib/jhub-gateway
USER 1000
WORKDIR /home/gateway
ENTRYPOINT ["tini", "-g", "--"]
CMD ["jhub-gateway", "--help"]
