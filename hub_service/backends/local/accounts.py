"""Which OS identity a hub user's cluster processes run under.

Either a mapped OS account (``LocalBackend.os_user``: a template such as
``jupyter-{username}``, as The Littlest JupyterHub names accounts, or a callable),
or a uid allocated per hub user from ``LocalBackend.uid_range`` and kept in the
store, so the same hub user gets the same uid after a service restart.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidOptions


@dataclass(frozen=True)
class Identity:
    """An OS identity for cluster processes; persisted with the cluster."""

    uid: int
    gid: int
    account: str = ""  # the OS account name; "" for an allocated uid
    home: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "gid": self.gid, "account": self.account, "home": self.home}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Identity | None:
        if not data:
            return None
        return cls(int(data["uid"]), int(data["gid"]), str(data["account"]), str(data["home"]))


def check_template(template: str) -> None:
    """``ValueError`` unless ``template`` formats with only ``{username}``."""
    try:
        result = template.format(username="alice")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"LocalBackend.os_user {template!r} is not a valid template: only {{username}} "
            f"may be used, e.g. 'jupyter-{{username}}' ({type(exc).__name__}: {exc})"
        ) from None
    if not result:
        raise ValueError("LocalBackend.os_user must not format to an empty name")


def account_name(os_user: str | Callable[[Any], Any], user: Any) -> str:
    """The OS account mapped to a hub user, or "" if none is (then a uid is allocated)."""
    if callable(os_user):
        name = os_user(user)
    elif os_user:
        name = os_user.format(username=user.name)
    else:
        return ""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise TypeError(f"LocalBackend.os_user returned {type(name).__name__}, not a str")
    return name


def account_identity(name: str, hub_user: str, service_uid: int) -> Identity:
    """The identity of OS account ``name``; a 422 if it is missing or privileged."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InvalidOptions(
            f"there is no OS account {name!r} for hub user {hub_user!r}; ask an administrator "
            "to create it (LocalBackend.os_user maps hub users to OS accounts)",
            reason="no_os_account",
        ) from None
    if entry.pw_uid in (0, service_uid):
        # running user code as root or as the service would undo the isolation
        raise InvalidOptions(
            f"OS account {name!r} is privileged (uid {entry.pw_uid}); clusters cannot run as it",
            reason="privileged_os_account",
        )
    return Identity(entry.pw_uid, entry.pw_gid, name, entry.pw_dir)


def check_uid_range(low: int, high: int) -> None:
    """``ValueError`` unless ``[low, high]`` is a usable range of unprivileged uids."""
    if not 1000 <= low <= high <= 2**31 - 2:
        raise ValueError(
            f"LocalBackend.uid_range ({low}, {high}) must satisfy 1000 <= low <= high < 2**31-1"
        )


def allocatable(uid: int) -> bool:
    """False for a uid that belongs to an OS account: it is someone's already."""
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False
