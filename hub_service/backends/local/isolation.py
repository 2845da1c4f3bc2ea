"""Run a cluster process as its hub user's own uid, in its own PID and mount namespace.

The command is wrapped as::

    unshare --pid --fork --mount-proc --kill-child -- sh -c SCRIPT jhub-gateway-sandbox CMD...

``unshare`` (root) creates the namespaces and stays outside as the process the
service tracks (its pid is stable, it is the session leader the service signals,
and ``--kill-child`` takes the namespace down with it). SCRIPT runs as root
inside: it hides every directory on the way to the files the process needs that
other users may not traverse (e.g. ``/root`` holding a pyenv Python, or the
0700 data directory) behind an empty tmpfs and binds back only those files, then
changes to the cluster's run directory and ``exec``s ``setpriv`` to drop to the
uid with no groups, capabilities or way back (``no_new_privs``). The process is
PID 1 of its namespace and sees only its own processes in ``/proc``.

Nothing here is secret: command lines are world-readable in ``/proc``.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from .accounts import Identity

REQUIRED_TOOLS = ("unshare", "setpriv", "mount", "sh")
COMMAND_VAR = "JHUB_GATEWAY_SANDBOX_COMMAND"
_MASK_OPTIONS = "mode=0711,size=1m,nosuid,nodev"


def missing_tools() -> list[str]:
    return [t for t in REQUIRED_TOOLS if shutil.which(t) is None]


def _traversable(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IXOTH)
    except OSError:
        return False


#: packages a cluster process imports; their directories must be reachable
RUNTIME_PACKAGES = (
    "jhub_gateway",
    "jhub_gateway.client",
    "jhub_gateway.hub_service",
    "jhub_gateway.controller",
    "distributed",
    "dask",
)


def runtime_paths(commands: Iterable[str], search_path: str) -> list[Path]:
    """What a cluster process must reach: the interpreter, its libraries, the commands.

    Chosen deliberately, not all of ``sys.path``: that holds the service's working
    directory, which is no business of a cluster's.
    """
    prefixes = [Path(os.path.realpath(p)) for p in {sys.prefix, sys.base_prefix}]
    paths = set(prefixes)
    paths.add(Path(sys.executable).parent)
    for entry in sys.path:  # site-packages outside the prefixes (e.g. PYTHONPATH, --user)
        real = Path(os.path.realpath(entry)) if entry else None
        if real and real.is_dir() and real.name in ("site-packages", "dist-packages"):
            paths.add(real)
    for name in RUNTIME_PACKAGES:  # editable installs map packages to source trees
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths.add(Path(location))
    for command in commands:
        found = shutil.which(command, path=search_path)
        if found:
            paths.add(Path(found).parent)
    return sorted({Path(os.path.realpath(p)) for p in paths})


def masks(needed: Iterable[Path]) -> dict[Path, list[Path]]:
    """Directory to hide -> the needed paths below it to bind back.

    A directory is hidden when it is the topmost ancestor of a needed path that
    others may not traverse; paths inside another needed path of the same mask
    come along with it. ``ValueError`` if a needed path is inside another one
    behind a directory others cannot traverse (binding cannot fix that).
    """
    found: dict[Path, list[Path]] = {}
    for path in sorted(set(needed), key=lambda p: len(p.parts)):
        blocked = next((a for a in reversed(path.parents) if not _traversable(a)), None)
        if blocked is None:
            continue
        binds = found.setdefault(blocked, [])
        outer = next((b for b in binds if path == b or b in path.parents), None)
        if outer is None:
            binds.append(path)
            continue
        between = [a for a in path.parents if outer in a.parents]
        if not all(_traversable(a) for a in between):
            raise ValueError(
                f"cluster processes need {path}, but it is inside {outer} behind a directory "
                "other users cannot traverse; make it traversable (chmod o+x) or move it"
            )
    return found


def sandbox_script(hidden: dict[Path, list[Path]], rundir: Path, identity: Identity) -> str:
    """The root-side shell script run inside the new namespaces (pure)."""
    q = shlex.quote
    # umask: the skeleton directories recreated inside a mask are traversable, not listable
    lines = [
        "set -e",
        "umask 066",
        # the command comes in the environment, so that only the dropped process's own
        # command line names it (tools matching "scheduler" find the process itself)
        f'eval "set -- ${COMMAND_VAR}"',
        f"unset {COMMAND_VAR}",
    ]
    fd = 3
    opened: list[tuple[int, Path]] = []
    for binds in hidden.values():  # open everything before any mask hides it
        for path in binds:
            lines.append(f"exec {fd}<{q(str(path))}")
            opened.append((fd, path))
            fd += 1
    for mask in hidden:
        lines.append(f"mount -t tmpfs -o {_MASK_OPTIONS} jhub-gateway-hidden {q(str(mask))}")
    for fd_num, path in opened:
        lines.append(f"mkdir -p {q(str(path))}")
        lines.append(f"mount --no-canonicalize --rbind /proc/self/fd/{fd_num} {q(str(path))}")
        lines.append(f"exec {fd_num}<&-")
    lines.append(f"cd {q(str(rundir))}")
    groups = "--init-groups" if identity.account else "--clear-groups"
    lines.append(
        f"exec setpriv --reuid {identity.uid} --regid {identity.gid} {groups} "
        '--no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"'
    )
    return "\n".join(lines)


def wrap(
    cmd: list[str],
    env: dict[str, str],
    identity: Identity,
    rundir: Path,
    needed: Iterable[Path],
    pid_namespace: bool = True,
) -> list[str]:
    """``cmd`` wrapped to run as ``identity`` (see the module docstring); sets ``env``'s
    command variable when the wrapper needs it."""
    if not pid_namespace:
        # no namespaces: the uid alone separates users; paths must be reachable as they are
        groups = "--init-groups" if identity.account else "--clear-groups"
        return [
            "setpriv",
            f"--reuid={identity.uid}",
            f"--regid={identity.gid}",
            groups,
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *cmd,
        ]
    script = sandbox_script(masks([*needed, rundir]), rundir, identity)
    env[COMMAND_VAR] = shlex.join(cmd)
    return [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "--",
        "sh",
        "-c",
        script,
        "jhub-gateway-sandbox",
    ]


def unreachable(needed: Iterable[Path]) -> list[Path]:
    """Needed paths others cannot reach (only a problem without mount namespaces)."""
    return sorted(p for p in set(needed) if not all(_traversable(a) for a in p.parents))
