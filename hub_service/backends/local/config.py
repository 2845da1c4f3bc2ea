"""The local backend's settings (``c.LocalBackend.*``), each validated when set."""

from __future__ import annotations

from typing import Any

from traitlets import (
    Bool,
    Callable,
    CaselessStrEnum,
    Float,
    Instance,
    Int,
    TraitError,
    Tuple,
    Unicode,
    Union,
    validate,
)

from ...proxy import TraefikProxy
from ..base import Backend
from . import accounts, addresses


class LocalBackendConfig(Backend):
    """Settings of :class:`LocalBackend`; configure them as ``c.LocalBackend.<name>``."""

    isolation = CaselessStrEnum(
        ("auto", "on", "off"),
        default_value="auto",
        help="""Run each hub user's schedulers and workers under a uid of their own.

        'auto' (default): on when the service runs as root, else off with a warning.
        'on': required (the service fails to start unless it is root and util-linux's
        unshare/setpriv work). 'off': every cluster runs as the service's own user and
        can read its data directory, environment and the other clusters' credentials;
        only for a single-user machine.""",
        config=True,
    )
    os_user = Union(
        [Unicode(), Callable()],
        default_value="",
        help="""The OS account a hub user's clusters run as, when isolated.

        A template with {username} (e.g. 'jupyter-{username}', as The Littlest
        JupyterHub names accounts) or a callable taking the hub user (with .name and
        .groups) and returning an account name or None. Empty (default), or None
        from the callable: a uid is allocated per hub user from uid_range instead.""",
        config=True,
    )
    uid_range = Tuple(
        Int(),
        Int(),
        default_value=(200000, 299999),
        help="Inclusive range of uids allocated to hub users without a mapped OS account "
        "(kept in the store, so a user keeps their uid across restarts). Pick a range no "
        "OS account uses; uids of existing accounts are skipped.",
        config=True,
    )
    cluster_network = Unicode(
        "127.3.0.0/16",
        help="Loopback network (inside 127.0.0.0/8) from which each cluster gets its own host "
        "to bind to; heartbeats reporting addresses off that host are rejected.",
        config=True,
    )
    heartbeat_period = Float(
        5.0, min=0.5, help="Seconds between scheduler heartbeats.", config=True
    )
    heartbeat_timeout = Float(
        30.0,
        min=1,
        help="A RUNNING cluster whose scheduler is silent this long FAILS.",
        config=True,
    )
    check_period = Float(1.0, min=0.05, help="Seconds between timeout checks.", config=True)
    worker_nanny = Bool(
        False,
        help="Run workers under a nanny process (restarts on memory blowups; slower start).",
        config=True,
    )
    pool_size = Int(
        1,
        min=0,
        help="""Pre-started schedulers (and workers) kept ready per OS identity and environment.

        A pooled process has already imported distributed (most of a cold start), so a
        new cluster (or worker) that claims one is running in a fraction of a second. It carries no
        user data and no credentials until claimed, runs under the same uid and sandbox
        as the cluster it becomes, and serves one cluster only. When isolated, a hub
        user's pool starts after their first cluster. Each idle process holds about
        75 MiB. 0 turns pools off (every start is cold).""",
        config=True,
    )
    pool_max_total = Int(
        4,
        min=0,
        help="Upper bound on pre-started processes (schedulers and workers) over all users. "
        "A busy user's pool grows by one per cold start it could have saved, up to half of "
        "this; pools of users who started clusters recently replace idle users' pools.",
        config=True,
    )
    pool_idle_timeout = Float(
        600.0,
        min=1,
        help="Seconds without a claim after which a grown pool shrinks back to pool_size, "
        "and without any new cluster after which a key's pool is stopped entirely.",
        config=True,
    )
    encrypt_keys = Unicode(
        None,
        allow_none=True,
        help="';'-separated Fernet keys for secrets at rest (first encrypts). Default: env "
        "JHUB_GATEWAY_ENCRYPT_KEYS, else a key file created 0600 in the data directory.",
        config=True,
    )
    stop_clusters_on_shutdown = Bool(
        False,
        help="Stop every cluster when the service stops. Off by default: users keep their clusters "
        "across a service restart, which re-adopts them.",
        config=True,
    )
    stopped_cluster_max_age = Float(
        86400.0,
        min=0,
        help="Seconds a stopped or failed cluster stays listed (and in the state file) before it is purged.",
        config=True,
    )
    proxy = Instance(
        TraefikProxy, allow_none=True, help="The Traefik proxy (configure it as c.TraefikProxy)."
    )

    @validate("cluster_network")
    def _check_network(self, proposal: Any) -> str:
        try:
            addresses.parse_network(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"LocalBackend.cluster_network: {exc}") from None
        return proposal["value"]

    @validate("os_user")
    def _check_os_user(self, proposal: Any) -> Any:
        value = proposal["value"]
        if isinstance(value, str) and value:
            try:
                accounts.check_template(value)
            except ValueError as exc:
                raise TraitError(str(exc)) from None
        return value

    @validate("uid_range")
    def _check_uid_range(self, proposal: Any) -> Any:
        low, high = proposal["value"]
        try:
            accounts.check_uid_range(low, high)
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]
