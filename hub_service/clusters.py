"""Cluster operations as plain functions of (caller, request): no Tornado here.

Handlers parse and authenticate, then call these; every rule about who may do
what, with which options and within which limits, lives here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from traitlets import TraitError

from jhub_gateway.models import Cluster, ClusterStatus, User
from jhub_gateway.names import is_valid_cluster_name
from jhub_gateway.options import Options, OptionsError, resolve_options

from .backends.base import Backend
from .errors import Conflict, Forbidden, InvalidOptions, NotFound, QuotaExceeded
from .quotas import Limits, Usage, UserQuotas, cluster_footprint, usage_of, workers_allowed
from .scheduler_comm import send_to_scheduler

log = logging.getLogger("jhub_gateway.hub_service")

ACTIVE = {ClusterStatus.PENDING, ClusterStatus.RUNNING}


@dataclass
class ScaleResult:
    ok: bool
    msg: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "msg": self.msg}


class ClusterService:
    def __init__(self, backend: Backend, cluster_options: Any, quotas: UserQuotas) -> None:
        self.backend = backend
        self.cluster_options = cluster_options
        self.quotas = quotas
        # Quota checks and the changes they allow happen under the owner's lock, so
        # concurrent requests cannot all pass the same check (one replica's view).
        self._user_locks: dict[str, asyncio.Lock] = {}

    def _lock(self, username: str) -> asyncio.Lock:
        lock = self._user_locks.get(username)
        if lock is None:
            lock = self._user_locks[username] = asyncio.Lock()
        return lock

    async def options_for(self, user: User) -> Options:
        try:
            return await resolve_options(self.cluster_options, user)
        except OptionsError as exc:
            raise InvalidOptions(str(exc)) from None

    def lookup(self, user: User, name: str) -> Cluster:
        """The named cluster if ``user`` may see it: 404 if unknown, 403 if another user's."""
        cluster = self.backend.get_cluster(name) if is_valid_cluster_name(name) else None
        if cluster is None:
            raise NotFound(f"no cluster named {name!r}", reason="cluster_not_found")
        if not user.may_access(cluster.username):
            raise Forbidden(f"cluster {name!r} belongs to another user", reason="not_owner")
        return cluster

    def limits_and_usage(self, user: User, exclude: str | None = None) -> tuple[Limits, Usage]:
        clusters = [c for c in self.backend.list_clusters(user.name, ACTIVE) if c.name != exclude]
        return self.quotas.limits_for(user), usage_of(clusters)

    async def create(self, user: User, body: dict[str, Any]) -> Cluster:
        requested = body.get("cluster_options", {})
        if not isinstance(requested, dict):
            raise InvalidOptions("cluster_options must be a JSON object of option name to value")
        options = await self.options_for(user)
        try:
            validated = options.parse(requested)
            overrides = await options.get_configuration(validated, user)
        except OptionsError as exc:
            raise InvalidOptions(str(exc)) from None
        try:
            config = self.backend.cluster_config_class(parent=self.backend, **overrides)
        except (TraitError, ValueError, TypeError) as exc:
            raise InvalidOptions(f"invalid cluster configuration: {exc}") from None
        async with self._lock(user.name):
            limits, usage = self.limits_and_usage(user)
            if limits.clusters is not None and usage.clusters >= limits.clusters:
                raise QuotaExceeded(
                    f"you already have {usage.clusters} active cluster(s), the most allowed is "
                    f"{limits.clusters}; stop one first"
                )
            probe = Cluster(name="-", username=user.name, config=config.to_dict())
            if workers_allowed(limits, usage, probe, 0) < 0 or _over(limits, usage, probe):
                raise QuotaExceeded(
                    "starting another scheduler would exceed your core or memory quota"
                )
            cluster = await self.backend.start_cluster(user, validated, config)
        log.info("cluster %s created for %s", cluster.name, user.name)
        return cluster

    async def stop(self, user: User, name: str) -> None:
        cluster = self.backend.get_cluster(name) if is_valid_cluster_name(name) else None
        if cluster is None:
            return  # upstream semantics: deleting an unknown cluster is a no-op 204
        if not user.may_access(cluster.username):
            raise Forbidden(f"cluster {name!r} belongs to another user", reason="not_owner")
        who = "owner" if user.name == cluster.username else f"admin {user.name}"
        await self.backend.stop_cluster(name, reason="StopRequested", message=f"stopped by {who}")

    def _running(self, user: User, name: str) -> Cluster:
        cluster = self.lookup(user, name)
        if cluster.status != ClusterStatus.RUNNING:
            raise Conflict(
                f"cluster {name!r} is {cluster.status.name}, not RUNNING", reason="not_running"
            )
        return cluster

    def _clamp(self, user: User, cluster: Cluster, count: int) -> tuple[int, str | None]:
        max_workers = self.backend.cluster_config(cluster).max_workers()
        msg = None
        if max_workers is not None and count > max_workers:
            msg = f"Scale request of {count} workers would exceed this cluster's limit, scaled to {max_workers} instead"
            count = max_workers
        limits, others = self.limits_and_usage(user=_owner(cluster, user), exclude=cluster.name)
        allowed = workers_allowed(limits, others, cluster, count)
        if allowed < count:
            msg = f"Scale request of {count} workers would exceed your quota, scaled to {allowed} instead"
            count = allowed
        return count, msg

    async def scale(self, user: User, name: str, count: Any) -> ScaleResult:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidOptions(f"count must be a non-negative integer, got {count!r}")
        cluster = self._running(user, name)
        async with self._lock(cluster.username):
            count, msg = self._clamp(user, cluster, count)
            await send_to_scheduler(cluster.api_address, cluster, {"op": "scale", "count": count})
            await self.backend.request_workers(name, count)
        return ScaleResult(ok=msg is None, msg=msg)

    async def heartbeat(self, cluster: Cluster, body: dict[str, Any]) -> None:
        """Apply a scheduler heartbeat, its worker count bound by the cluster's and owner's limits.

        The heartbeat comes from code the user controls, so its count is a request.
        """
        async with self._lock(cluster.username):
            owner = User(name=cluster.username, groups=cluster.owner_groups)
            count, _ = self._clamp(owner, cluster, body.get("count", 0))
            await self.backend.on_heartbeat(cluster.name, {**body, "count": count})

    async def adapt(self, user: User, name: str, body: dict[str, Any]) -> ScaleResult:
        unknown = set(body) - {"minimum", "maximum", "active"}
        if unknown:
            raise InvalidOptions(
                f"unknown adapt fields: {sorted(unknown)}; expected minimum, maximum, active"
            )
        minimum, maximum, active = (
            body.get("minimum"),
            body.get("maximum"),
            body.get("active", True),
        )
        for label, value in (("minimum", minimum), ("maximum", maximum)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidOptions(
                    f"{label} must be a non-negative integer or null, got {value!r}"
                )
        if not isinstance(active, bool):
            raise InvalidOptions(f"active must be true or false, got {active!r}")
        if minimum is not None and maximum is not None and minimum > maximum:
            raise InvalidOptions(f"minimum ({minimum}) must not exceed maximum ({maximum})")
        cluster = self._running(user, name)
        msgs = []
        if maximum is None:
            # "no upper bound" still means within this cluster's and the owner's limits
            limit, _ = self._clamp(user, cluster, 2**31 - 1)
            maximum = None if limit == 2**31 - 1 else limit
        else:
            maximum, msg = self._clamp(user, cluster, maximum)
            msgs.append(msg)
        if minimum is not None:
            minimum, msg = self._clamp(user, cluster, minimum)
            msgs.append(msg)
        await send_to_scheduler(
            cluster.api_address,
            cluster,
            {"op": "adapt", "minimum": minimum, "maximum": maximum, "active": active},
        )
        msg = next((m for m in msgs if m), None)
        return ScaleResult(ok=msg is None, msg=msg)


def _over(limits: Limits, usage: Usage, probe: Cluster) -> bool:
    cores, memory = cluster_footprint(probe, 0)
    return (limits.cores is not None and usage.cores + cores > limits.cores) or (
        limits.memory is not None and usage.memory + memory > limits.memory
    )


def _owner(cluster: Cluster, caller: User) -> User:
    # An admin scaling someone's cluster is bound by the owner's quota, not their own.
    if caller.name == cluster.username:
        return caller
    return User(name=cluster.username, groups=cluster.owner_groups)
