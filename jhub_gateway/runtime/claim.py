"""What pre-started (pooled) scheduler and worker processes share: waiting for a claim.

A pooled process has imported distributed and holds no cluster. It says it is
ready on stdout (its log), then reads one claim from stdin: a JSON line naming
the cluster and the command-line arguments it is to run with. Stdin reaching EOF
without a claim means the service went away (or dropped it from its pool).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterable
from typing import Any, BinaryIO

import dask.config

MAX_CLAIM_BYTES = 64 * 1024


class ClaimError(ValueError):
    """A claim line that is not what the service writes."""


def parse_claim(line: bytes) -> tuple[str, list[str]]:
    """``(cluster name, arguments)`` from a claim line."""
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


def import_modules(config_key: str, extra: Iterable[str] = ()) -> None:
    """Import the modules dask config ``config_key`` lists (an HTTP server's routes,
    imported as the server starts) and ``extra``, so a claim does not wait for them."""
    for module in [*dask.config.get(config_key, []), *extra]:
        with contextlib.suppress(ImportError):  # the process reports it as it would
            importlib.import_module(module)


def wait_for_claim(program: str, stdin: BinaryIO | None = None) -> tuple[str, list[str]] | None:
    """Say ready, then read the claim; None when the service closed stdin unclaimed."""
    print(f"{program}: ready", flush=True)
    line = (stdin or sys.stdin.buffer).readline(MAX_CLAIM_BYTES)
    if not line.strip():
        return None
    try:
        name, args = parse_claim(line)
    except ClaimError as exc:
        raise SystemExit(f"{program}: {exc}") from None
    print(f"{program}: claimed by cluster {name}", flush=True)
    # the claim pipe is done with: the process must not hold the service's end open
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return name, args
