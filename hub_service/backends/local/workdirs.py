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

from jhub_gateway import private_files, tls
from jhub_gateway.models import Cluster

from .accounts import Identity

TOKEN_FILE = "api-token"
TLS_DIR = "tls"


def prepare(workdir: Path, rundir: Path, cluster: Cluster, identity: Identity | None) -> None:
    """Create both directories and write the credentials; nothing is left on failure."""
    prepare_dirs(workdir, rundir, identity)
    try:
        write_credentials(rundir, cluster, identity)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def prepare_dirs(workdir: Path, rundir: Path, identity: Identity | None) -> None:
    """Create a cluster's (or a pooled process's) directories, the run directory
    owned by ``identity``; nothing is left on failure."""
    workdir.mkdir(parents=True, mode=0o700)
    try:
        if rundir != workdir:
            rundir.mkdir(mode=0o700)
        if identity is not None:
            os.chown(rundir, identity.uid, identity.gid, follow_symlinks=False)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def write_credentials(rundir: Path, cluster: Cluster, identity: Identity | None) -> None:
    """Write ``cluster``'s TLS material and token into ``rundir``, readable by ``identity`` only.

    The run directory may already belong to ``identity`` (a pooled process has run
    there), so every name is resolved relative to directory descriptors opened
    without following links, and created exclusively: a link or file planted in it
    makes this fail (OSError) instead of writing, as root, somewhere else.
    """
    nofollow_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    run_fd = os.open(rundir, nofollow_dir)
    try:
        os.mkdir(TLS_DIR, 0o700, dir_fd=run_fd)
        tls_fd = os.open(TLS_DIR, nofollow_dir, dir_fd=run_fd)
        try:
            _write_new(tls_fd, tls.CERT_FILENAME, cluster.tls_cert, identity)
            _write_new(tls_fd, tls.KEY_FILENAME, cluster.tls_key, identity)
            if identity is not None:
                os.fchown(tls_fd, identity.uid, identity.gid)
        finally:
            os.close(tls_fd)
        _write_new(run_fd, TOKEN_FILE, cluster.token, identity)
    finally:
        os.close(run_fd)


def _write_new(dir_fd: int, name: str, data: str, identity: Identity | None) -> None:
    owner = (identity.uid, identity.gid) if identity is not None else None
    private_files.write_new(name, data, dir_fd=dir_fd, owner=owner)


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
