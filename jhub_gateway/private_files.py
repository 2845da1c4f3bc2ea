"""Writing secrets to files nobody else can have prepared: new, 0600, no links followed.

Whoever hands credentials to a scheduler (the local backend, a warm pod taking its
claim, the controller making that claim) may write into a directory the user's code
has already touched (a pooled process's run directory, a warm pod's scratch space),
so a file or link already at the name must make the write fail, never redirect it.
"""

from __future__ import annotations

import os

__all__ = ["write_new"]


def write_new(
    path: str | os.PathLike[str],
    data: str,
    *,
    dir_fd: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Create ``path`` (relative to ``dir_fd`` if given) with ``data``, mode 0600.

    ``FileExistsError`` if anything, a symlink included, is already there.
    ``owner`` is ``(uid, gid)`` to hand the file to before anything is written.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600, dir_fd=dir_fd)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, data.encode())
    finally:
        os.close(fd)
