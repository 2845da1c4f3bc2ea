"""A pre-started scheduler: ``python -m jhub_gateway.runtime.pooled_scheduler``.

The local backend keeps a few of these per OS identity. Each has imported
``distributed`` and this runtime (the half second of a cold start that is not
the scheduler's own work) and holds no cluster: it waits for one claim, a
single JSON line on stdin, then becomes that cluster's scheduler exactly as
``dask scheduler <args>`` would, with the same preload.

What a claim carries is not secret: the cluster's name and the scheduler's
command-line arguments. Its credentials were written by the service into this
process's run directory just before the claim (the environment already points
at those paths), so they never sit in a pipe or an environment. The dashboard
guard is installed from that fresh token before distributed creates the HTTP
server, as the preload's import-time hook does on a cold start.

Stdin reaching EOF without a claim means the service went away (or dropped this
process from its pool): exit quietly, nothing was ever assigned here.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from typing import Any

import dask.config
import distributed.cli.dask_scheduler as dask_scheduler_cli
import distributed.scheduler  # noqa: F401  the import a claim must not wait for

from ..dashboard_credential import dashboard_credential
from . import dashboard, preload

MAX_CLAIM_BYTES = 64 * 1024


class ClaimError(ValueError):
    """A claim line that is not what the service writes."""


def parse_claim(line: bytes) -> tuple[str, list[str]]:
    """``(cluster name, scheduler arguments)`` from a claim line."""
    try:
        claim: Any = json.loads(line)
    except ValueError as exc:
        raise ClaimError(f"the claim is not JSON: {exc}") from None
    if not isinstance(claim, dict):
        raise ClaimError("the claim is not a JSON object")
    name, args = claim.get("cluster_name"), claim.get("args")
    if not isinstance(name, str) or not name:
        raise ClaimError("the claim has no cluster_name")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ClaimError("the claim's args are not a list of strings")
    return name, args


def read_claim(stream: Any) -> bytes:
    """One line from ``stream`` (a binary file); b"" when the service closed it unclaimed."""
    return stream.readline(MAX_CLAIM_BYTES)


def become_scheduler(name: str, args: list[str]) -> None:
    """Turn this process into cluster ``name``'s scheduler (does not return)."""
    os.environ[preload.ENV_CLUSTER_NAME] = name
    token = preload._read_token_now(os.environ[preload.ENV_API_TOKEN])
    if not token:
        raise SystemExit(f"{preload.ENV_API_TOKEN} names an empty token file")
    dashboard.guard_from_creation(dashboard_credential(token))
    # the claim pipe is done with: the scheduler must not hold the service's end open
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    dask_scheduler_cli.main.main(args=args, prog_name="dask scheduler")


READY_LINE = "jhub_gateway.runtime.pooled_scheduler: ready"
#: imported by a scheduler as it starts, not by ``import distributed``
_START_MODULES = ("distributed.http.statics", "distributed.diagnostics.websocket")


def import_start_modules() -> None:
    """Import what ``Scheduler`` imports as it starts (its HTTP routes: about half a
    second with jupyter-server-proxy installed), so a claim does not wait for it."""
    routes = dask.config.get("distributed.scheduler.http.routes", [])
    for module in [*routes, *_START_MODULES]:
        with contextlib.suppress(ImportError):  # the scheduler reports it as it would
            importlib.import_module(module)


def main() -> None:
    import_start_modules()
    print(READY_LINE, flush=True)  # imports done: a claim from now on skips all of them
    line = read_claim(sys.stdin.buffer)
    if not line.strip():
        return  # never claimed
    try:
        name, args = parse_claim(line)
    except ClaimError as exc:
        raise SystemExit(f"jhub_gateway.runtime.pooled_scheduler: {exc}") from None
    print(f"jhub_gateway.runtime.pooled_scheduler: claimed by cluster {name}", flush=True)
    become_scheduler(name, args)


if __name__ == "__main__":
    main()
