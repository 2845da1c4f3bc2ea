"""A pre-started scheduler: ``python -m jhub_gateway.runtime.pooled_scheduler``.

The local backend keeps a few of these per OS identity. Each has imported
``distributed`` and this runtime (the half second of a cold start that is not
the scheduler's own work) and holds no cluster: it waits for one claim
(``claim.py``), then becomes that cluster's scheduler exactly as
``dask scheduler <args>`` would, with the same preload.

A claim is not secret: the cluster's name and the scheduler's arguments. Its
credentials were written by the service into this process's run directory just
before the claim (the environment already points at those paths), so they never
sit in a pipe or an environment. The dashboard guard is installed from that
fresh token before distributed creates the HTTP server, as the preload's
import-time hook does on a cold start.
"""

from __future__ import annotations

import os

import distributed.cli.dask_scheduler as dask_scheduler_cli
import distributed.scheduler  # noqa: F401  the import a claim must not wait for

from ..dashboard_credential import dashboard_credential
from . import claim, dashboard, preload

PROGRAM = "jhub_gateway.runtime.pooled_scheduler"


def become_scheduler(name: str, args: list[str]) -> None:
    """Turn this process into cluster ``name``'s scheduler (does not return)."""
    os.environ[preload.ENV_CLUSTER_NAME] = name
    token = preload._read_token_now(os.environ[preload.ENV_API_TOKEN])
    if not token:
        raise SystemExit(f"{preload.ENV_API_TOKEN} names an empty token file")
    dashboard.guard_from_creation(dashboard_credential(token))
    dask_scheduler_cli.main.main(args=args, prog_name="dask scheduler")


def main() -> None:
    claim.import_modules(
        "distributed.scheduler.http.routes",
        ("distributed.http.statics", "distributed.diagnostics.websocket"),
    )
    claimed = claim.wait_for_claim(PROGRAM)
    if claimed is not None:
        become_scheduler(*claimed)


if __name__ == "__main__":
    main()
