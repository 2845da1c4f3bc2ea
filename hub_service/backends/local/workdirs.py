"""A local cluster's directories (blocking file I/O: call through ``asyncio.to_thread``).

``clusters/<name>/`` (the service's, 0700) holds the process logs, opened by the
service and handed to the processes as their stdout, so a cluster cannot point
them elsewhere. ``clusters/<name>/run/`` is the processes' working directory and
holds the credentials they need (TLS cert and key, the API token file); when the
cluster runs under its own uid that directory and everything in it is chowned to
that uid, 0700/0600, so only it (and root) can read them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from jhub_gateway import tls
from jhub_gateway.models import Cluster

from .accounts import Identity

TOKEN_FILE = "api-token"
TLS_DIR = "tls"


def prepare(workdir: Path, rundir: Path, cluster: Cluster, identity: Identity | None) -> None:
    """Create both directories and write the credentials; nothing is left on failure."""
    workdir.mkdir(parents=True, mode=0o700)
    try:
        if rundir != workdir:
            rundir.mkdir(mode=0o700)
        tls.write_credentials(rundir / TLS_DIR, cluster.tls_cert, cluster.tls_key)
        fd = os.open(
            rundir / TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(fd, "w") as f:
            f.write(cluster.token)
        if identity is not None:
            # created by us in a directory nobody else can enter yet: no race to lose
            for path in (
                rundir,
                rundir / TLS_DIR,
                *(rundir / TLS_DIR).iterdir(),
                rundir / TOKEN_FILE,
            ):
                os.chown(path, identity.uid, identity.gid, follow_symlinks=False)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def tls_paths(rundir: Path) -> tuple[str, str]:
    return str(rundir / TLS_DIR / tls.CERT_FILENAME), str(rundir / TLS_DIR / tls.KEY_FILENAME)


def remove_credentials(workdir: Path, rundir: Path) -> None:
    """Drop the run directory of a stopped cluster (the logs stay until it is purged)."""
    if rundir != workdir:
        shutil.rmtree(rundir, ignore_errors=True)


def isolated_env(rundir: Path, identity: Identity) -> dict[str, str]:
    """Variables that keep an isolated process's files in its run directory."""
    home = identity.home if identity.home and os.path.isdir(identity.home) else str(rundir)
    return {
        "HOME": home,
        "USER": identity.account or f"uid{identity.uid}",
        "TMPDIR": str(rundir),
        # dask's scratch space, else a /tmp/dask-scratch-space shared by every uid
        "DASK_TEMPORARY_DIRECTORY": str(rundir),
    }
