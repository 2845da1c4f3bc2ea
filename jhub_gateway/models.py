"""Cluster and user models shared by the service, the backends and the controller.

States and wire field names follow upstream dask-gateway so its client parses
our responses unchanged; every transition carries a reason.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


class ClusterStatus(enum.IntEnum):
    """User-facing cluster states (upstream names, in lifecycle order)."""

    PENDING = 1
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4
    FAILED = 5

    @property
    def is_active(self) -> bool:
        return self in (ClusterStatus.PENDING, ClusterStatus.RUNNING)

    @property
    def is_terminal(self) -> bool:
        return self in (ClusterStatus.STOPPED, ClusterStatus.FAILED)

    @classmethod
    def from_name(cls, name: str) -> ClusterStatus:
        """Parse a state name case-insensitively; raises ValueError naming the choices."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            choices = ", ".join(s.name.lower() for s in cls)
            raise ValueError(
                f"unknown cluster status {name!r}; expected one of: {choices}"
            ) from None


@dataclass(frozen=True)
class User:
    """An authenticated caller. Service accounts are named ``service:<name>``."""

    name: str
    admin: bool = False
    groups: frozenset[str] = frozenset()

    def may_access(self, owner: str) -> bool:
        return self.admin or self.name == owner


@dataclass
class ClusterEvent:
    """One lifecycle event: what happened to a cluster, and why."""

    time: float
    kind: str
    reason: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": int(self.time * 1000),
            "kind": self.kind,
            "reason": self.reason,
            "message": self.message,
        }


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Cluster:
    """The service's view of one cluster, whatever backend runs it."""

    name: str
    username: str
    status: ClusterStatus = ClusterStatus.PENDING
    reason: str = "Created"
    message: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    # secrets: never in a repr (and so never in a log line or traceback that prints one)
    token: str = field(default="", repr=False)
    tls_cert: str = field(default="", repr=False)
    tls_key: str = field(default="", repr=False)
    scheduler_address: str = ""
    dashboard_address: str = ""
    api_address: str = ""
    start_time: int = field(default_factory=now_ms)
    stop_time: int | None = None
    target_workers: int = 0
    active_workers: int = 0
    #: the owner's groups when the cluster was created (their quotas apply to it)
    owner_groups: frozenset[str] = frozenset()
    events: list[ClusterEvent] = field(default_factory=list)

    def record(self, kind: str, reason: str, message: str = "") -> ClusterEvent:
        event = ClusterEvent(time.time(), kind, reason, message)
        self.events.append(event)
        return event

    def transition(self, status: ClusterStatus, reason: str, message: str = "") -> bool:
        """Move to ``status`` with a reason. Returns False if nothing changed.

        Terminal states are final, and STOPPING leads only to them: a cluster being
        stopped never reports RUNNING again.
        """
        if self.status == status or self.status.is_terminal:
            return False
        if self.status == ClusterStatus.STOPPING and not status.is_terminal:
            return False  # a stopping cluster only ever ends
        self.status = status
        self.reason = reason
        self.message = message
        if status.is_terminal and self.stop_time is None:
            self.stop_time = now_ms()
        self.record(status.name, reason, message)
        return True

    @property
    def dashboard_route(self) -> str | None:
        if self.status == ClusterStatus.RUNNING and self.dashboard_address:
            return f"/clusters/{self.name}/status"
        return None

    def to_wire(self, *, include_credentials: bool, extended: bool = False) -> dict[str, Any]:
        """The upstream cluster dict; ``extended`` adds our fields.

        The upstream client builds its report with ``**fields`` and fails on any
        unknown key, so the additions are only sent to clients that ask for them.
        Credentials are only sent to the owner (or an admin) of a RUNNING cluster.
        """
        running = self.status == ClusterStatus.RUNNING
        send_tls = include_credentials and running
        wire: dict[str, Any] = {
            "name": self.name,
            "dashboard_route": self.dashboard_route,
            "status": self.status.name,
            "start_time": self.start_time,
            "stop_time": self.stop_time,
            "options": self.options,
            "tls_cert": self.tls_cert if send_tls else None,
            "tls_key": self.tls_key if send_tls else None,
        }
        if extended:
            wire["username"] = self.username
            wire["reason"] = self.reason
            wire["message"] = self.message
            wire["workers"] = {"requested": self.target_workers, "active": self.active_workers}
        return wire
