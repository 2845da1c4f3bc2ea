"""Idle clusters stop, by default, judged by the service from the scheduler's heartbeats.

A cluster's ``idle_timeout`` (``ClusterConfig``, set per group or per cluster by
the options handler) is bounded by what the operator allows a user: the longest
idle time of their groups, else ``max_idle_timeout``. The scheduler stops itself
too, but it runs the user's code; the service applies the bound whatever the
scheduler does, as long as it reports.
"""

from __future__ import annotations

import math
from typing import Any

from traitlets import Dict, Float, TraitError, validate
from traitlets.config import Configurable

from jhub_gateway.models import User

from .errors import InvalidOptions


class IdlePolicy(Configurable):
    """Bounds on how long a user's cluster may sit without work."""

    max_idle_timeout = Float(
        None,
        allow_none=True,
        min=0,
        help="""Longest idle timeout any cluster may have, in seconds (None: no bound).

        A cluster configured with a longer one, or with 0 (never), stops after this
        many idle seconds instead.""",
        config=True,
    )
    group_max_idle_timeout = Dict(
        help="""Per JupyterHub group, the longest idle timeout of its members' clusters,
        e.g. ``{"long-jobs": 14400}``. A user in several groups gets the longest; None
        in a group means no bound for its members.""",
        config=True,
    )

    @validate("group_max_idle_timeout")
    def _check_groups(self, proposal: dict) -> dict:
        for group, value in proposal["value"].items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise TraitError(
                    f"IdlePolicy.group_max_idle_timeout[{group!r}] must be seconds (>= 0) or None"
                )
        return proposal["value"]

    def bound_for(self, owner: User) -> float | None:
        """The longest idle timeout ``owner``'s clusters may have (None: unbounded)."""
        bound: float | None = self.max_idle_timeout
        for group in sorted(owner.groups):
            if group not in self.group_max_idle_timeout:
                continue
            value = self.group_max_idle_timeout[group]
            if value is None:
                return None
            bound = value if bound is None else max(bound, float(value))
        return bound

    def timeout_for(self, configured: float, owner: User) -> float:
        """The idle timeout that applies (0: never), ``configured`` within the owner's bound."""
        bound = self.bound_for(owner)
        if bound is None or bound <= 0:
            return configured
        return bound if configured <= 0 else min(configured, bound)

    def stop_message(self, heartbeat: dict[str, Any], configured: float, owner: User) -> str | None:
        """Why the cluster should stop now, or None. Raises InvalidOptions on a bad report."""
        idle = heartbeat.get("idle_seconds")
        if idle is None:
            return None  # an older runtime: its own idle loop is all there is
        if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not math.isfinite(idle):
            raise InvalidOptions(f"idle_seconds must be a number of seconds, got {idle!r}")
        timeout = self.timeout_for(configured, owner)
        if timeout <= 0 or idle < timeout:
            return None
        return f"no work for {idle:.0f} s (idle timeout {timeout:.0f} s)"
