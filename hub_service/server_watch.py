"""Stop a user's clusters once their notebook server has been gone for a grace period.

Clusters outliving their notebooks is what costs dask-gateway's users most: the
client's ``__del__`` never runs when a kernel is killed. The service asks the hub,
once per period for all users, whose servers are active, and stops the clusters
of everyone else after ``grace_period``. It fails safe: when the hub cannot be
asked, or the service may not see every user's servers, nothing is stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from traitlets import Bool, Float, TraitError, validate
from traitlets.config import LoggingConfigurable

from .auth.base import Authenticator

#: unfiltered scopes the service needs to see every user's servers
REQUIRED_SCOPES = ("list:users", "read:servers")
PAGE_LIMIT = 200  # the hub's largest page by default

HubGet = Callable[[str], Awaitable[Any]]


class HubUnavailable(Exception):
    """The hub could not be asked, or answered something unusable."""


class ServerWatch(LoggingConfigurable):
    """Ties clusters to their owner's JupyterHub server (with JupyterHub auth)."""

    enabled = Bool(
        True,
        help="""Stop a user's clusters when none of their JupyterHub servers has been
        running for ``grace_period`` seconds (the server stopped, or the user was deleted).

        Needs the service's hub role to hold ``list:users`` and ``read:servers``; without
        them the service says so at start and stops nothing.""",
        config=True,
    )
    grace_period = Float(
        300.0,
        help="Seconds a user may be without a running server before their clusters stop; "
        "a server restarted within it keeps them.",
        config=True,
    )
    interval = Float(
        60.0, help="Seconds between two looks at the hub's list of active servers.", config=True
    )
    allow_opt_out = Bool(
        True,
        help="Honour a cluster's ``keep_after_server_stops`` setting (a cluster option the "
        "operator may expose). False stops every cluster with its owner's server.",
        config=True,
    )

    @validate("grace_period", "interval")
    def _positive(self, proposal: dict) -> float:
        value = proposal["value"]
        if value < 0 or (proposal["trait"].name == "interval" and value < 1):
            raise TraitError(
                f"ServerWatch.{proposal['trait'].name} must be a number of seconds "
                f"({'>= 1' if proposal['trait'].name == 'interval' else '>= 0'}), got {value!r}"
            )
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._absent_since: dict[str, float] = {}

    def missing_scopes(self, own_scopes: set[str]) -> list[str]:
        """What of :data:`REQUIRED_SCOPES` the service's token lacks (``admin`` holds all)."""
        if "admin:users" in own_scopes and "admin:servers" in own_scopes:
            return []
        return [s for s in REQUIRED_SCOPES if s not in own_scopes]

    async def active_users(self, hub_get: HubGet) -> set[str]:
        """Names of users with at least one active (ready or starting) server."""
        names: set[str] = set()
        offset = 0
        while True:
            page = await hub_get(f"/users?state=active&offset={offset}&limit={PAGE_LIMIT}")
            items, next_offset = _page(page)
            names.update(u["name"] for u in items if isinstance(u, dict) and "name" in u)
            if next_offset is None or next_offset <= offset:
                return names
            offset = next_offset

    def owners_to_stop(self, owners: set[str], active: set[str], now: float) -> set[str]:
        """Owners of clusters whose servers have been gone for the grace period.

        ``owners`` are the users who hold clusters; services and other non-user
        identities (``kind:name``) have no servers and are never stopped here.
        """
        users = {o for o in owners if ":" not in o}
        for name in list(self._absent_since):
            if name in active or name not in users:
                del self._absent_since[name]  # back within the grace period, or nothing left
        due = set()
        for name in users - active:
            since = self._absent_since.setdefault(name, now)
            if now - since >= self.grace_period:
                due.add(name)
        return due


def _page(body: Any) -> tuple[list, int | None]:
    if isinstance(body, list):  # a hub that does not paginate
        return body, None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise HubUnavailable("the hub's user list has an unexpected shape")
    nxt = (body.get("_pagination") or {}).get("next")
    return body["items"], (nxt.get("offset") if isinstance(nxt, dict) else None)


class ServerWatchLoop:
    """The running side of :class:`ServerWatch`: one owned task, stopped with the service."""

    def __init__(
        self,
        watch: ServerWatch,
        hub_get: HubGet,
        owners: Callable[[], set[str]],
        stop_clusters_of: Callable[[str, str], Awaitable[int]],
    ) -> None:
        self.watch = watch
        self._hub_get = hub_get
        self._owners = owners
        self._stop_clusters_of = stop_clusters_of
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="server-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def check_once(self) -> set[str]:
        """One look at the hub; returns the owners whose clusters were stopped."""
        owners = self._owners()
        if not owners:
            self.watch.owners_to_stop(set(), set(), time.monotonic())
            return set()
        active = await self.watch.active_users(self._hub_get)
        due = self.watch.owners_to_stop(owners, active, time.monotonic())
        grace = self.watch.grace_period
        for name in sorted(due):
            stopped = await self._stop_clusters_of(
                name, f"the owner's JupyterHub server stopped more than {grace:.0f} s ago"
            )
            if stopped:
                self.watch.log.info(
                    "stopped %d cluster(s) of %s: their server is gone", stopped, name
                )
        return due

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except HubUnavailable as exc:
                self.watch.log.warning(
                    "server watch: hub not asked this round, nothing stopped: %s", exc
                )
            except Exception:
                self.watch.log.exception("server watch: check failed, nothing stopped this round")
            await asyncio.sleep(self.watch.interval)


async def start_server_watch(
    watch: ServerWatch, authenticator: Authenticator, clusters: Any
) -> ServerWatchLoop | None:
    """Start the watch if it is enabled and can work; say at start why it cannot.

    ``clusters`` is the service layer (``owners_bound_to_servers``, ``stop_for_server_gone``).
    """
    if not watch.enabled:
        watch.log.info("server watch off (ServerWatch.enabled = False)")
        return None
    hub = authenticator.hub_api()
    if hub is None:
        watch.log.info(
            "server watch off: clusters follow notebook servers only with an authenticator "
            "that knows the hub (JupyterHub auth)"
        )
        return None
    hub_get = hub.hub_get
    try:
        missing = watch.missing_scopes(await hub.own_scopes())
    except Exception as exc:
        # the hub may come up after us; the loop's first rounds will say if it stays away
        watch.log.warning("server watch: could not read this service's scopes (%s)", exc)
        missing = []
    if missing:
        watch.log.error(
            "server watch off: this service's hub role lacks %s; grant them (e.g. in "
            "c.JupyterHub.load_roles) or set c.ServerWatch.enabled = False",
            ", ".join(missing),
        )
        return None

    async def stop_clusters_of(username: str, message: str) -> int:
        return await clusters.stop_for_server_gone(username, message, watch.allow_opt_out)

    async def hub_get_or_unavailable(path: str) -> Any:
        try:
            return await hub_get(path)
        except Exception as exc:
            raise HubUnavailable(str(exc)) from None

    loop = ServerWatchLoop(
        watch,
        hub_get_or_unavailable,
        owners=lambda: clusters.owners_bound_to_servers(watch.allow_opt_out),
        stop_clusters_of=stop_clusters_of,
    )
    loop.start()
    watch.log.info(
        "server watch on: clusters stop %.0f s after their owner's server (checked every %.0f s)",
        watch.grace_period,
        watch.interval,
    )
    return loop
