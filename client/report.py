"""``ClusterReport``: the client's view of one cluster dict from the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jhub_gateway.models import ClusterStatus

from .security import GatewaySecurity

__all__ = ["ClusterReport", "ClusterStatus", "coerce_status"]


def coerce_status(value: ClusterStatus | str) -> ClusterStatus:
    """Accept a ClusterStatus or its name in any case."""
    if isinstance(value, ClusterStatus):
        return value
    if isinstance(value, str):
        return ClusterStatus.from_name(value)
    raise TypeError(f"cluster status must be a ClusterStatus or str, got {value!r}")


def _time(ms: Any) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000)


class ClusterReport:
    """A snapshot of a cluster's state (upstream's fields, plus ``reason``/``message``).

    ``scheduler_address`` and ``tls_*`` are set only while the cluster runs;
    ``reason``/``message`` explain the latest transition when the server says.
    """

    __slots__ = (
        "name",
        "options",
        "status",
        "scheduler_address",
        "dashboard_link",
        "start_time",
        "stop_time",
        "tls_cert",
        "tls_key",
        "reason",
        "message",
    )

    def __init__(
        self,
        name: str,
        options: dict,
        status: ClusterStatus,
        scheduler_address: str | None,
        dashboard_link: str | None,
        start_time: datetime | None,
        stop_time: datetime | None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.status = status
        self.scheduler_address = scheduler_address
        self.dashboard_link = dashboard_link
        self.start_time = start_time
        self.stop_time = stop_time
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"ClusterReport<name={self.name}, status={self.status.name}>"

    @property
    def security(self) -> GatewaySecurity | None:
        """TLS credentials for this cluster, or None when it is not running."""
        if self.tls_key is None or self.tls_cert is None:
            return None
        return GatewaySecurity(tls_key=self.tls_key, tls_cert=self.tls_cert)

    @property
    def status_text(self) -> str:
        """``STATUS (reason: message)`` for humans; omits what the server did not send."""
        detail = ": ".join(p for p in (self.reason, self.message) if p)
        return f"{self.status.name} ({detail})" if detail else self.status.name

    @classmethod
    def _from_json(cls, public_address: str, proxy_address: str, msg: dict) -> ClusterReport:
        # Unknown fields (username, workers, future additions) are ignored.
        name = msg["name"]
        status = coerce_status(msg["status"])
        route = msg.get("dashboard_route")
        return cls(
            name=name,
            options=msg.get("options") or {},
            status=status,
            scheduler_address=(
                f"{proxy_address}/{name}" if status is ClusterStatus.RUNNING else None
            ),
            dashboard_link=f"{public_address}{route}" if route else None,
            start_time=_time(msg.get("start_time")),
            stop_time=_time(msg.get("stop_time")),
            tls_cert=msg.get("tls_cert"),
            tls_key=msg.get("tls_key"),
            reason=msg.get("reason"),
            message=msg.get("message"),
        )
