"""Cluster operations as plain functions of (caller, request): no Tornado here.

Handlers and pages parse and authenticate, then call these; they never reach the
backend themselves. Every rule about who may do what, with which options and
within which limits, lives here, so every backend and every page gets the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from traitlets import TraitError

from jhub_gateway.bearer import secret_matches
from jhub_gateway.models import Cluster, ClusterStatus, User
from jhub_gateway.names import is_valid_cluster_name
from jhub_gateway.options import Options, OptionsError, resolve_options

from .adaptive import AdaptiveBounds
from .admission import Admission
from .backends.base import Backend
from .errors import Conflict, Forbidden, InvalidOptions, NotFound, Unauthorized
from .idle import IdlePolicy
from .quotas import Footprint, Limits, Usage, UserQuotas
from .scheduler_comm import send_to_scheduler

log = logging.getLogger("jhub_gateway.hub_service")

ACTIVE = frozenset({ClusterStatus.PENDING, ClusterStatus.RUNNING})
#: states a ?wait long poll waits through (each ends in RUNNING or a final state)
_SETTLING = frozenset({ClusterStatus.PENDING, ClusterStatus.STOPPING})
UNBOUNDED = 2**31 - 1


@dataclass
class ScaleResult:
    ok: bool
    msg: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "msg": self.msg}


class ClusterService:
    def __init__(
        self,
        backend: Backend,
        cluster_options: Any,
        quotas: UserQuotas,
        idle: IdlePolicy | None = None,
    ) -> None:
        self._backend = backend
        self.idle = idle if idle is not None else IdlePolicy()
        self.cluster_options = cluster_options
        self.admission = Admission(
            quotas,
            active_clusters=lambda username: backend.list_clusters(username, set(ACTIVE)),
            config_of=backend.cluster_config,
        )
        # Requests that change one cluster's scale reach its scheduler in order; other
        # clusters (and the owner's quota lock) are not held up while one waits.
        self._cluster_locks: dict[str, asyncio.Lock] = {}
        #: adaptive bounds for extended answers (upstream's API has no place for them)
        self.adaptive = AdaptiveBounds(backend.registry.get)
        backend.registry.observers.append(self.adaptive.observe)
        backend.registry.observers.append(self._on_cluster_change)

    def _on_cluster_change(self, name: str, cluster: Cluster | None) -> None:
        if cluster is None:  # purged: its lock would otherwise stay for the process's life
            self.forget(name)

    def _cluster_lock(self, name: str) -> asyncio.Lock:
        lock = self._cluster_locks.get(name)
        if lock is None:
            lock = self._cluster_locks[name] = asyncio.Lock()
        return lock

    # -- reading -----------------------------------------------------------------------------

    async def options_for(self, user: User) -> Options:
        try:
            return await resolve_options(self.cluster_options, user)
        except OptionsError as exc:
            raise InvalidOptions(str(exc)) from None

    async def find(self, user: User, name: str) -> Cluster:
        """:meth:`lookup` after the backend made sure it knows ``name`` (another replica's
        cluster may not have reached this one's cache yet)."""
        await self.ensure_known(name)
        return self.lookup(user, name)

    async def ensure_known(self, name: str) -> None:
        if is_valid_cluster_name(name):
            await self._backend.ensure_known(name)

    def lookup(self, user: User, name: str) -> Cluster:
        """The named cluster if ``user`` may see it: 404 if unknown, 403 if another user's."""
        cluster = self._backend.get_cluster(name) if is_valid_cluster_name(name) else None
        if cluster is None:
            raise NotFound(f"no cluster named {name!r}", reason="cluster_not_found")
        if not user.may_access(cluster.username):
            raise Forbidden(f"cluster {name!r} belongs to another user", reason="not_owner")
        return cluster

    def list_for(self, user: User, statuses: set[ClusterStatus] | None = None) -> list[Cluster]:
        """The caller's own clusters (admins too see only theirs here)."""
        return self._backend.list_clusters(user.name, set(ACTIVE) if statuses is None else statuses)

    def list_all(
        self,
        admin: User,
        statuses: set[ClusterStatus] | None = None,
        username: str | None = None,
    ) -> list[Cluster]:
        """Every user's clusters (or one user's), for hub admins only."""
        if not admin.admin:
            raise Forbidden(
                "only hub admins may list every user's clusters", reason="admin_required"
            )
        return self._backend.list_clusters(username, set(ACTIVE) if statuses is None else statuses)

    async def wait_until_settled(self, user: User, name: str, timeout: float) -> Cluster:
        """The cluster once it is RUNNING, STOPPED or FAILED, or as it is after ``timeout``.

        STOPPING is waited through too: a start that fails passes through it on its
        way to FAILED, and a client waiting for the start (upstream's too) must see
        FAILED with the reason, not "already stopped".
        """
        deadline = time.monotonic() + timeout
        cluster = await self.find(user, name)
        while cluster.status in _SETTLING:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self._backend.wait_for_change(name, left)
            cluster = self.lookup(user, name)
        return cluster

    async def wait_for_change(self, user: User, name: str, timeout: float) -> Cluster:
        """The cluster after its next change (or ``timeout``): what live pages wait on."""
        await self.find(user, name)
        await self._backend.wait_for_change(name, timeout)
        return self.lookup(user, name)

    async def wait_for_any_change(self, since: int, timeout: float) -> int:
        """A change counter, once any cluster changed after ``since`` (or at ``timeout``).

        Fed by the same notifications as :meth:`wait_for_change`; live pages wait on it.
        ``since=-1`` returns the current counter at once.
        """
        return await self._backend.wait_for_any_change(since, timeout)

    def footprint(self, cluster: Cluster) -> Footprint:
        """What ``cluster`` holds against its owner's quota (cores, memory, workers)."""
        return Footprint.of(self._backend.cluster_config(cluster), cluster.target_workers)

    def usage(self, user: User) -> tuple[Limits, Usage]:
        return self.admission.usage(user)

    async def authorize_dashboard(self, user: User, name: str) -> Cluster:
        """Forward-auth: the owner or an admin may see a cluster's dashboard."""
        return await self.find(user, name)

    def census(self) -> list[tuple[Cluster, Footprint]]:
        """Every cluster this replica knows, whatever its state, with what it holds.

        For metrics, which count for the operator rather than for a user.
        """
        return [(c, self.footprint(c)) for c in self._backend.list_clusters(None, None)]

    async def health(self) -> dict[str, dict]:
        return await self._backend.health()

    # -- changing ----------------------------------------------------------------------------

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
            config = self._backend.cluster_config_class(parent=self._backend, **overrides)
        except (TraitError, ValueError, TypeError) as exc:
            raise InvalidOptions(f"invalid cluster configuration: {exc}") from None
        async with self.admission.admit_cluster(user, config):
            cluster = await self._backend.start_cluster(user, validated, config)
        log.info("cluster %s created for %s", cluster.name, user.name)
        return cluster

    async def stop(self, user: User, name: str) -> None:
        await self.ensure_known(name)
        cluster = self._backend.get_cluster(name) if is_valid_cluster_name(name) else None
        if cluster is None:
            return  # upstream semantics: deleting an unknown cluster is a no-op 204
        if not user.may_access(cluster.username):
            raise Forbidden(f"cluster {name!r} belongs to another user", reason="not_owner")
        who = "owner" if user.name == cluster.username else f"admin {user.name}"
        await self._backend.stop_cluster(name, reason="StopRequested", message=f"stopped by {who}")

    async def stop_all_of(self, admin: User, username: str) -> int:
        """Stop every active cluster of ``username``; returns how many were asked to stop."""
        clusters = self.list_all(admin, set(ACTIVE), username=username)
        await asyncio.gather(*(self.stop(admin, c.name) for c in clusters))
        return len(clusters)

    def owners_bound_to_servers(self, allow_opt_out: bool) -> set[str]:
        """Owners of active clusters that should stop with their owner's notebook server."""
        return {c.username for c in self._bound_clusters(None, allow_opt_out)}

    async def stop_for_server_gone(self, username: str, message: str, allow_opt_out: bool) -> int:
        """Stop ``username``'s clusters because their notebook server is gone; how many."""
        clusters = self._bound_clusters(username, allow_opt_out)
        await asyncio.gather(
            *(
                self._backend.stop_cluster(c.name, reason="OwnerServerStopped", message=message)
                for c in clusters
            )
        )
        return len(clusters)

    def _bound_clusters(self, username: str | None, allow_opt_out: bool) -> list[Cluster]:
        return [
            c
            for c in self._backend.list_clusters(username, set(ACTIVE))
            if not (
                allow_opt_out
                and getattr(self._backend.cluster_config(c), "keep_after_server_stops", False)
            )
        ]

    def scheduler_of(self, name: str, token: str | None) -> Cluster | None:
        """The cluster if ``token`` is its own (the request comes from its scheduler)."""
        cluster = self._backend.get_cluster(name) if is_valid_cluster_name(name) else None
        if cluster is None or token is None or not secret_matches(cluster.token, token):
            return None
        return cluster

    def authenticate_scheduler(self, name: str, token: str | None) -> Cluster:
        """Like :meth:`scheduler_of`, but 401 for anyone else."""
        cluster = self.scheduler_of(name, token)
        if cluster is None:
            raise Unauthorized("this request needs the cluster's own token")
        return cluster

    async def stop_by_scheduler(self, cluster: Cluster) -> None:
        """The scheduler's own stop request (its idle timeout)."""
        await self._backend.stop_cluster(
            cluster.name,
            # the runtime asks only when idle; the service's own check says the same
            reason="IdleTimeout",
            message="the scheduler reported no work for its idle timeout",
        )

    async def _running(self, user: User, name: str) -> Cluster:
        cluster = await self.find(user, name)
        if cluster.status != ClusterStatus.RUNNING:
            raise Conflict(
                f"cluster {name!r} is {cluster.status.name}, not RUNNING", reason="not_running"
            )
        return cluster

    async def scale(self, user: User, name: str, count: Any) -> ScaleResult:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidOptions(f"count must be a non-negative integer, got {count!r}")
        cluster = await self._running(user, name)
        owner = _owner(cluster, user)
        async with self._cluster_lock(name):
            async with self.admission.reserve_workers(owner, cluster, count) as (count, msg):
                allowed = await self._backend.reserve_workers(owner, cluster, count)
                if allowed < count:
                    msg = _over_quota(count, allowed)
                    count = allowed
                await send_to_scheduler(
                    cluster.api_address, cluster, {"op": "scale", "count": count}
                )
                self.adaptive.set(name, None)  # a fixed count ends adaptive scaling
                await self._backend.request_workers(name, count)
        return ScaleResult(ok=msg is None, msg=msg)

    async def heartbeat(self, cluster: Cluster, body: dict[str, Any]) -> None:
        """Apply a scheduler heartbeat, its worker count bound by the cluster's and owner's limits.

        The heartbeat comes from code the user controls (see authenticate_scheduler):
        its count is a request, and the backend checks the addresses it reports.
        """
        name = cluster.name
        if cluster.status.is_terminal:
            raise NotFound(f"cluster {name!r} is {cluster.status.name}", reason="cluster_stopped")
        owner = User(name=cluster.username, groups=cluster.owner_groups)
        idle_timeout = self._backend.cluster_config(cluster).idle_timeout
        idle_stop = self.idle.stop_message(body, idle_timeout, owner)
        async with self.admission.reserve_workers(owner, cluster, body.get("count", 0)) as (
            count,
            _,
        ):
            count = await self._backend.reserve_workers(owner, cluster, count)
            await self._backend.on_heartbeat(name, {**body, "count": count})
        if "adaptive" in body:  # the scheduler's own word (older runtimes do not send it)
            self.adaptive.set(name, body["adaptive"])
        if idle_stop is not None and cluster.status == ClusterStatus.RUNNING:
            log.info("cluster %s idle, stopping: %s", name, idle_stop)
            await self._backend.stop_cluster(name, reason="IdleTimeout", message=idle_stop)

    async def adapt(self, user: User, name: str, body: dict[str, Any]) -> ScaleResult:
        minimum, maximum, active = _parse_adapt(body)
        cluster = await self._running(user, name)
        owner = _owner(cluster, user)
        msgs = []
        if maximum is None:
            # "no upper bound" still means within this cluster's and the owner's limits
            limit, _ = await self.admission.clamp(owner, cluster, UNBOUNDED)
            maximum = None if limit == UNBOUNDED else limit
        else:
            maximum, msg = await self.admission.clamp(owner, cluster, maximum)
            msgs.append(msg)
        if minimum is not None:
            minimum, msg = await self.admission.clamp(owner, cluster, minimum)
            msgs.append(msg)
        async with self._cluster_lock(name):
            await send_to_scheduler(
                cluster.api_address,
                cluster,
                {"op": "adapt", "minimum": minimum, "maximum": maximum, "active": active},
            )
            bounds = {"minimum": minimum or 0, "maximum": maximum}
            self.adaptive.set(name, bounds if active else None)
        msg = next((m for m in msgs if m), None)
        return ScaleResult(ok=msg is None, msg=msg)

    def forget(self, name: str) -> None:
        """Drop per-cluster bookkeeping of a purged cluster."""
        self._cluster_locks.pop(name, None)


def _parse_adapt(body: dict[str, Any]) -> tuple[int | None, int | None, bool]:
    unknown = set(body) - {"minimum", "maximum", "active"}
    if unknown:
        raise InvalidOptions(
            f"unknown adapt fields: {sorted(unknown)}; expected minimum, maximum, active"
        )
    minimum, maximum, active = body.get("minimum"), body.get("maximum"), body.get("active", True)
    for label, value in (("minimum", minimum), ("maximum", maximum)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise InvalidOptions(f"{label} must be a non-negative integer or null, got {value!r}")
    if not isinstance(active, bool):
        raise InvalidOptions(f"active must be true or false, got {active!r}")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise InvalidOptions(f"minimum ({minimum}) must not exceed maximum ({maximum})")
    return minimum, maximum, active


def _owner(cluster: Cluster, caller: User) -> User:
    # An admin scaling someone's cluster is bound by the owner's quota, not their own.
    if caller.name == cluster.username:
        return caller
    return User(name=cluster.username, groups=cluster.owner_groups)


def _over_quota(wanted: int, allowed: int) -> str:
    return f"Scale request of {wanted} workers would exceed your quota, scaled to {allowed} instead"
