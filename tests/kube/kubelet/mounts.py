"""Real mounts at fixed paths, in a private mount namespace per container process.

Clients find in-cluster credentials at the fixed path
``/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}``, which
no rewriting of arguments can reach. As root, the kubelet starts such containers
through ``unshare --mount`` and a tiny shell step that bind-mounts each volume
directory read-only onto its ``mountPath`` and then ``exec``s the container's
program (same pid, so signals and exit codes are the program's). Only
``mountPath``s under :data:`BIND_PREFIXES` are mounted for real; other mounts keep
the path rewriting of :mod:`podenv`. Without root or ``unshare`` nothing is
mounted (and such paths stay unreachable).
"""

from __future__ import annotations

import logging
import os
import shutil

log = logging.getLogger(__name__)

BIND_PREFIXES = ("/var/run/secrets/", "/run/secrets/")
# $1..: pairs of (source, target), then "--", then the program and its arguments.
_SCRIPT = (
    'while [ "$1" != "--" ]; do mkdir -p "$2" && mount --bind "$1" "$2" && '
    'mount -o remount,bind,ro "$2" || { echo "kubelet: cannot mount $1 on $2" >&2; exit 126; }; '
    'shift 2; done; shift; exec "$@"'
)


class MountNamespaces:
    def __init__(self) -> None:
        self.unshare = shutil.which("unshare")
        self.enabled = bool(self.unshare) and os.geteuid() == 0
        if not self.enabled:
            log.info("no per-pod mount namespaces (needs root and unshare)")

    def can_bind(self, mount_path: str) -> bool:
        path = mount_path.rstrip("/") + "/"
        return self.enabled and path.startswith(BIND_PREFIXES)

    def wrap(self, binds: list[tuple[str, str]], argv: list[str]) -> list[str]:
        if not binds or not self.unshare:
            return argv
        pairs = [p for target, local in binds for p in (local, target)]
        return [self.unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", _SCRIPT,
                "kubelet-mount", *pairs, "--", *argv]  # fmt: skip
