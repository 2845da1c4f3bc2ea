"""Environment defaults of cluster processes, shared by the local backend and the pod builders.

- ``NANNY_ENVIRONMENT``: what distributed's nanny sets in its worker's environment
  by default (``distributed.nanny.pre-spawn-environ`` and a fixed hash seed, so
  every worker hashes strings alike, which shuffles and groupbys rely on). A
  worker started without a nanny gets them from its launcher instead.
- ``SCHEDULER_HTTP_ROUTES``: distributed's default scheduler HTTP routes without
  ``distributed.http.proxy``. That one proxies worker dashboards (these clusters'
  workers are reached directly or serve none) and imports jupyter-server-proxy
  where installed (dask-labextension brings it): half a second and 12 MiB of every
  scheduler start.

Both go below a cluster's own ``environment``, which overrides them.
"""

from __future__ import annotations

NANNY_ENVIRONMENT: dict[str, str] = {
    "PYTHONHASHSEED": "6640",
    "MALLOC_TRIM_THRESHOLD_": "65536",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}

SCHEDULER_HTTP_ROUTES = (
    "distributed.http.scheduler.prometheus",
    "distributed.http.scheduler.info",
    "distributed.http.scheduler.json",
    "distributed.http.health",
    "distributed.http.statics",
)
ENV_SCHEDULER_HTTP_ROUTES = "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"


def scheduler_environment() -> dict[str, str]:
    """Defaults of a scheduler's environment (below the cluster's own)."""
    return {ENV_SCHEDULER_HTTP_ROUTES: repr(list(SCHEDULER_HTTP_ROUTES))}
