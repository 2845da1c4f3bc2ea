"""Choosing and applying the per-user isolation of local cluster processes.

The mechanism is in ``isolation.py`` (pure command building); this decides at
start whether it applies (root, tools, kernel support), which identity each hub
user's clusters get, and wraps their commands.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jhub_gateway.models import User

from ...errors import InvalidOptions
from . import accounts, isolation
from .accounts import Identity
from .config import LocalBackendConfig
from .state import LocalClusterState
from .store import ClusterStore, StoreError


class IsolatingBackend(LocalBackendConfig):
    """The isolation part of the local backend (a base class of ``LocalBackend``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store: ClusterStore | None = None
        self.isolated = False
        self.pid_namespace = False
        self._needed: list[Path] = []

    async def _setup_isolation(self, data: Path) -> None:
        """Decide whether clusters run isolated; config errors raise ``ValueError``."""
        root = os.geteuid() == 0
        if self.isolation == "off" or (self.isolation == "auto" and not root):
            self.log.warning(
                "local backend: clusters run as this service's OS user (%s), so code in any "
                "hub user's cluster can read the service's environment and data directory "
                "(encryption key, every cluster's token and TLS key) and signal other users' "
                "processes. To isolate users, run the service as root (with util-linux) and "
                "keep LocalBackend.isolation = 'auto'; see the README's Security section",
                "isolation is off" if self.isolation == "off" else "not root",
            )
            return
        if not root:
            raise ValueError(
                "LocalBackend.isolation = 'on' needs the service to run as root (to start "
                "processes under other uids); run it as root or set isolation = 'auto'"
            )
        missing = isolation.missing_tools()
        if missing:
            raise ValueError(
                f"LocalBackend.isolation needs {', '.join(missing)} on PATH (Debian/Ubuntu "
                "package util-linux); install it, or set LocalBackend.isolation = 'off' to run "
                "every cluster as root (unsafe)"
            )
        os.chmod(data, 0o700)  # the isolated uids must not list or read it
        os.chmod(data / "clusters", 0o700)
        self._needed = isolation.runtime_paths(["dask", "python"], os.environ.get("PATH", ""))
        self.pid_namespace = await _probe_namespaces()
        if not self.pid_namespace:
            blocked = isolation.unreachable([*self._needed, data / "clusters"])
            if blocked:
                raise ValueError(
                    "this kernel refuses PID/mount namespaces (unshare --pid --mount-proc), "
                    "so isolated clusters must reach these paths directly, but other users "
                    f"cannot traverse to: {', '.join(map(str, blocked))}; allow namespaces or "
                    "make their parent directories traversable (chmod o+x)"
                )
            self.log.warning(
                "local backend: PID namespaces are unavailable; clusters run under their own "
                "uids but can see (not signal) other processes in /proc"
            )
        self.isolated = True
        self.log.info(
            "local backend: clusters isolated per hub user (%s, %s)",
            "mapped OS accounts"
            if self.os_user
            else f"uids {self.uid_range[0]}-{self.uid_range[1]}",
            "own PID namespaces" if self.pid_namespace else "no PID namespaces",
        )

    async def _identity(self, user: User) -> Identity | None:
        """The OS identity of ``user``'s new cluster; None when not isolating."""
        if not self.isolated:
            return None
        assert self.store is not None
        name = accounts.account_name(self.os_user, user)
        if name:
            return await asyncio.to_thread(accounts.account_identity, name, user.name, os.geteuid())
        low, high = self.uid_range
        try:
            uid = await self.store.user_uid(user.name, low, high, accounts.allocatable)
        except StoreError as exc:
            self.log.error("cannot allocate a uid for hub user %s: %s", user.name, exc)
            raise InvalidOptions(
                "no uid is free for your clusters; ask an administrator to widen "
                "LocalBackend.uid_range",
                reason="no_free_uid",
            ) from None
        return Identity(uid, uid)

    def _wrap(self, cmd: list[str], env: dict[str, str], state: LocalClusterState) -> list[str]:
        return self._wrap_for(cmd, env, state.identity, Path(state.rundir))

    def _wrap_for(
        self, cmd: list[str], env: dict[str, str], identity: Identity | None, rundir: Path
    ) -> list[str]:
        if identity is None:
            return cmd
        return isolation.wrap(cmd, env, identity, rundir, self._needed, self.pid_namespace)


async def _probe_namespaces() -> bool:
    """Whether this kernel lets us give a process its own PID and mount namespace."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "--",
            "true",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(proc.wait(), 10) == 0
    except (OSError, asyncio.TimeoutError):
        return False
