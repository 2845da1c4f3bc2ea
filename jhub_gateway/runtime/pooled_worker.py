"""A pre-started worker: ``python -m jhub_gateway.runtime.pooled_worker``.

As ``pooled_scheduler``, for workers without a nanny (a nanny starts its worker
in a new interpreter, which no pool can have warmed): one claim (``claim.py``)
turns it into ``dask worker <args>``. The cluster's TLS credentials were written
into its run directory just before the claim.
"""

from __future__ import annotations

import distributed.cli.dask_worker as dask_worker_cli
import distributed.worker  # noqa: F401  the import a claim must not wait for

from . import claim

PROGRAM = "jhub_gateway.runtime.pooled_worker"


def main() -> None:
    claim.import_modules("distributed.worker.http.routes", ("distributed.http.statics",))
    claimed = claim.wait_for_claim(PROGRAM)
    if claimed is not None:
        dask_worker_cli.main.main(args=claimed[1], prog_name="dask worker")


if __name__ == "__main__":
    main()
