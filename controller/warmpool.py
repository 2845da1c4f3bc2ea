"""The pool of warm scheduler pods: kept full in the background, claimed by new clusters.

Per watched namespace (watching all of them: its own and each one that has a
DaskCluster of the instance) the leader keeps ``size`` warm pods of one profile (see
:mod:`.builders.warm`): the scheduler profile used most by the namespace's
clusters in the cache (ties: the newest cluster's), counting the configured seed
profile (``KubeController.warm_scheduler_config``) once, so a fresh install warms
the expected profile and a deployment whose clusters differ from it learns
theirs. Warm pods of another profile, finished ones and claimed ones that were
never relabelled (the controller stopped between the claim and the relabel) are
deleted; so are claim Secrets without their pod.

A claim (:meth:`WarmPool.claim`, called by the reconciler instead of creating a
cold scheduler pod) takes a ready warm pod of the cluster's profile: it records
the claim in an annotation (conditional on the pod's resourceVersion), hands the
cluster's credentials over the claim channel, waits for the scheduler, then
relabels the pod and gives it the DaskCluster as owner. Any failure deletes the
warm pod and the cluster gets a cold one; a warm pod is never offered twice.

Unclaimed warm pods and their Secrets are owned by the controller's ConfigMap
(``helm uninstall`` deletes it, and the garbage collector them) where they share
its namespace, and the leader deletes them all when it is stopped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jhub_gateway.kube.client import PODS, SECRETS, Conflict, KubeError, NotFound
from jhub_gateway.tls import new_keypair
from jhub_gateway.warm_claim_message import Claim

from . import podstate
from .builders import ClusterSpec
from .builders.secret import TLS_CERT_KEY, TLS_KEY_KEY
from .builders.warm import (
    ANNOTATION_CLAIMED_BY,
    CLAIM_PORT,
    LABEL_PROFILE,
    build_claim_mark,
    build_claim_patch,
    build_warm_pod,
    build_warm_secret,
    claim_args,
    is_warmable,
    scheduler_profile,
    warm_selector,
)
from .cache import POD, SECRET, ClusterCache, Key
from .protocols import ApiClient
from .secrets import ClusterCredentials
from .settings import ControllerSettings
from .warmclaim import ClaimFailed, claim, claim_message

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RESYNC_PERIOD = 5.0
PENDING_TIMEOUT = 60.0
REFILL_DELAY = 2.0
"""Seconds after a claim before its replacement is created: a new warm pod's start
(an interpreter importing distributed) would compete for the node's CPU with the
scheduler just claimed, in the very moments its client connects."""
CLAIM_BACKOFF = 60.0
"""After a failed claim no cluster of that namespace tries one for this long (seconds):
if claims cannot work there at all (a NetworkPolicy between the controller and the
pods), each start pays for a failure at most once a minute, not every time. Also how
long a namespace gets no new warm pod after one was stuck or the API refused one."""
READY_TIMEOUT = 300.0
"""Seconds a warm pod may go without being Ready, from its creation or from when it last
was. One that is not by then (unschedulable, an image that cannot be pulled, a probe
that never passes) is deleted, and the namespace gets no new warm pod for
``CLAIM_BACKOFF``: a pod that can never serve a claim must not hold its resource
requests, or a place in the pool, for good."""
SEED_NAME = "warm-profile"


@dataclass(frozen=True)
class WarmSettings:
    size: int = 1
    """Warm pods kept per namespace (0: no pool, every scheduler starts cold)."""
    namespaces: tuple[str, ...] = ()
    follow_clusters: bool = False
    """Also warm every namespace that has a DaskCluster of this instance (a controller
    watching all namespaces cannot list them up front). Warm pods left in a namespace
    that no longer qualifies are deleted."""
    seed_config: Mapping[str, Any] = field(default_factory=dict)
    """``spec.config`` of the profile to warm before any cluster shows which one is used."""
    owner: Obj | None = None
    """ownerReference of every unclaimed warm pod and Secret in ``owner_namespace``."""
    owner_namespace: str = ""
    claim_timeout: float = 30.0


def _random_name() -> str:
    return f"dask-warm-{secrets.token_hex(5)}"


def _decode(secret: Obj, key: str) -> str:
    return base64.b64decode((secret.get("data") or {}).get(key) or "").decode()


class WarmPool:
    """One leadership term's warm pods (its in-flight memory is per term)."""

    def __init__(
        self,
        client: ApiClient,
        cache: ClusterCache,
        settings: ControllerSettings,
        warm: WarmSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.cache, self.settings, self.warm = client, cache, settings, warm
        self.clock = clock
        self._wake = asyncio.Event()
        self._creating: dict[Key, float] = {}  # created (Secret, then Pod), not seen yet
        self._claiming: dict[Key, float] = {}  # claim under way or just relabelled
        self._profiles: dict[tuple[str, str], str | None] = {}  # (uid, generation) -> profile
        self.claims = 0
        self._no_claims_until: dict[str, float] = {}  # namespace -> no claims before
        self._hold_until: dict[str, float] = {}  # namespace -> no new warm pods before

    @property
    def enabled(self) -> bool:
        return self.warm.size > 0

    def wake(self) -> None:
        self._wake.set()

    def namespaces(self) -> set[str]:
        """The namespaces to keep warm pods in."""
        kept = set(self.warm.namespaces)
        if self.warm.follow_clusters:
            kept.update(ns for ns, _ in self.cache.clusters)
        return kept

    def _namespaces_to_visit(self, kept: set[str]) -> list[str]:
        # where warm pods are kept, and where some are left to delete
        left = {ns for table in self.cache.warm.values() for ns, _ in table}
        return sorted(kept | left)

    # -- profiles ------------------------------------------------------------------------

    def _spec_of(self, cluster: Obj) -> ClusterSpec | None:
        try:
            return ClusterSpec.from_resource(cluster, **self.settings.spec_settings())
        except (KeyError, TypeError, ValueError):
            return None

    def _seed(self, namespace: str) -> ClusterSpec | None:
        resource = {
            "metadata": {"name": SEED_NAME, "namespace": namespace, "uid": ""},
            "spec": {"username": SEED_NAME, "config": dict(self.warm.seed_config)},
        }
        return self._spec_of(resource)

    def _profile_of(self, cluster: Obj) -> str | None:
        meta = cluster.get("metadata") or {}
        memo = (str(meta.get("uid")), str(meta.get("generation")))
        if memo not in self._profiles:
            spec = self._spec_of(cluster)
            warmable = spec is not None and is_warmable(spec)
            self._profiles[memo] = scheduler_profile(spec) if spec and warmable else None
        return self._profiles[memo]

    def target(self, namespace: str) -> tuple[str, ClusterSpec] | None:
        """The profile to keep warm in ``namespace`` and a spec of it (None: none warmable)."""
        votes: dict[str, list[tuple[float, Obj | None]]] = {}
        for (ns, _), cluster in self.cache.clusters.items():
            if ns != namespace:
                continue
            profile = self._profile_of(cluster)
            if profile is not None:
                created = podstate.parse_time(
                    (cluster.get("metadata") or {}).get("creationTimestamp")
                )
                votes.setdefault(profile, []).append((created or 0.0, cluster))
        seed = self._seed(namespace)
        if seed is not None and is_warmable(seed):
            votes.setdefault(scheduler_profile(seed), []).append((float("-inf"), None))
        if not votes:
            return None
        best = max(votes, key=lambda p: (len(votes[p]), max(t for t, _ in votes[p])))
        _, newest = max(votes[best], key=lambda vote: vote[0])
        spec = seed if newest is None else self._spec_of(newest)
        return (best, spec) if spec is not None else None

    # -- keeping the pool full -----------------------------------------------------------

    async def run(self) -> None:
        """Refill on every warm pod event and every few seconds, until cancelled."""
        while True:
            self._wake.clear()
            await self.refill_all()
            try:
                await asyncio.wait_for(self._wake.wait(), RESYNC_PERIOD)
            except TimeoutError:
                pass

    async def refill_all(self) -> None:
        """One refill of every namespace with warm pods, kept or left over."""
        kept = self.namespaces()  # once: following clusters, it walks them all
        for namespace in self._namespaces_to_visit(kept):
            try:
                await self.refill(namespace, keep=namespace in kept)
            except KubeError as exc:
                # e.g. a ResourceQuota refusing the pod: not again at every event
                log.info("warm pool of %s: API error %s %s; retrying in %g s",
                         namespace, exc.status, exc.reason, CLAIM_BACKOFF)  # fmt: skip
                self._hold(namespace, CLAIM_BACKOFF)

    def _pending(self, table: dict[Key, float]) -> set[Key]:
        cutoff = self.clock() - PENDING_TIMEOUT
        for key in [k for k, t in table.items() if t < cutoff]:
            del table[key]
        return set(table)

    async def refill(self, namespace: str, keep: bool | None = None) -> None:
        """Make ``namespace``'s warm pods what they should be; ``keep``: whether it is
        one of :meth:`namespaces` (None: find out)."""
        if keep is None:
            keep = namespace in self.namespaces()
        target = self.target(namespace) if self.enabled and keep else None
        profile = target[0] if target else None
        pods = {k: p for k, p in self.cache.warm[POD].items() if k[0] == namespace}
        claiming = self._pending(self._claiming)
        creating = self._pending(self._creating)
        for key in [k for k in creating if k in pods]:
            self._creating.pop(key, None)
        live: list[Key] = []
        for key, pod in sorted(pods.items()):
            if key in claiming or podstate.is_terminating(pod):
                continue
            labels = (pod.get("metadata") or {}).get("labels") or {}
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            if ANNOTATION_CLAIMED_BY in annotations:
                reason = "claimed but never relabelled"
            elif labels.get(LABEL_PROFILE) != profile:
                reason = "another profile"
            elif podstate.is_finished(pod):
                reason = "exited"
            elif self._stuck(pod):
                reason = f"not Ready for {READY_TIMEOUT:g} s"
                self._hold(namespace, CLAIM_BACKOFF)
            else:
                live.append(key)
                continue
            log.info("deleting warm pod %s/%s: %s", namespace, key[1], reason)
            await self._delete(key)
        live += [k for k in creating if k[0] == namespace and k not in pods]
        for key in live[self.warm.size :]:
            await self._delete(key)
        if target is not None and self.clock() >= self._hold_until.get(namespace, 0.0):
            for _ in range(self.warm.size - len(live)):
                await self._create(namespace, *target)
        await self._sweep_secrets(namespace, set(pods) | self._pending(self._creating) | claiming)

    def _hold(self, namespace: str, seconds: float) -> None:
        """No new warm pod in ``namespace`` for ``seconds`` (a longer hold stays)."""
        until = self.clock() + seconds
        self._hold_until[namespace] = max(self._hold_until.get(namespace, 0.0), until)

    def _stuck(self, pod: Obj) -> bool:
        """Not Ready for ``READY_TIMEOUT``: since its creation, or since it last was."""
        if podstate.is_ready(pod):
            return False
        since = podstate.not_ready_since(pod)
        return since is not None and self.clock() - since > READY_TIMEOUT

    async def _create(self, namespace: str, profile: str, spec: ClusterSpec) -> None:
        name = _random_name()
        key = (namespace, name)
        owner = self.warm.owner if namespace == self.warm.owner_namespace else None
        cert, tls_key = await asyncio.to_thread(new_keypair, name)
        self._creating[key] = self.clock()
        await self.client.create(
            SECRETS,
            build_warm_secret(spec, name=name, profile=profile, tls_cert=cert, tls_key=tls_key,
                              owner=owner),
            namespace,
        )  # fmt: skip
        try:
            await self.client.create(
                PODS, build_warm_pod(spec, name=name, profile=profile, owner=owner), namespace
            )
        except KubeError:
            await self._delete_secret(key)
            raise
        log.info("created warm pod %s/%s of profile %s", namespace, name, profile)

    async def _sweep_secrets(self, namespace: str, keep: set[Key]) -> None:
        for key in [k for k in self.cache.warm[SECRET] if k[0] == namespace and k not in keep]:
            await self._delete_secret(key)

    async def _delete(self, key: Key) -> None:
        self._creating.pop(key, None)
        try:
            await self.client.delete(PODS, key[1], key[0])
        except NotFound:
            pass
        await self._delete_secret(key)

    async def _delete_secret(self, key: Key) -> None:
        try:
            await self.client.delete(SECRETS, key[1], key[0])
        except NotFound:
            pass

    async def delete_all(self) -> None:
        """Every warm pod and claim Secret of the instance (the leader stops)."""
        selector = warm_selector(self.settings.instance)
        for namespace in self._namespaces_to_visit(self.namespaces()):
            for resource in (PODS, SECRETS):
                try:
                    await self.client.delete_collection(resource, namespace,
                                                        label_selector=selector)  # fmt: skip
                except KubeError as exc:
                    log.warning("could not delete the warm pods of %s: %s", namespace, exc.reason)

    # -- claims -----------------------------------------------------------------------------

    def _candidates(self, namespace: str, profile: str) -> list[tuple[Key, Obj, Obj]]:
        claiming = self._pending(self._claiming)
        out = []
        for key, pod in self.cache.warm[POD].items():
            meta = pod.get("metadata") or {}
            if key[0] != namespace or key in claiming or podstate.is_terminating(pod):
                continue
            if (meta.get("labels") or {}).get(LABEL_PROFILE) != profile:
                continue
            if ANNOTATION_CLAIMED_BY in (meta.get("annotations") or {}):
                continue
            secret = self.cache.warm[SECRET].get(key)
            if secret is None or not podstate.is_ready(pod) or not podstate.pod_ip(pod):
                continue
            out.append((key, pod, secret))
        return sorted(out, key=lambda c: str((c[1].get("metadata") or {}).get("creationTimestamp")))

    async def claim(
        self,
        spec: ClusterSpec,
        credentials: ClusterCredentials,
        announce: Callable[[str], Awaitable[None]] | None = None,
    ) -> str | None:
        """Make a warm pod ``spec``'s scheduler; its name, or None (then start a cold one).

        ``announce(name)`` runs once the pod is marked, before its scheduler starts: the
        reconciler writes ``status.schedulerPod`` then, so the scheduler's first heartbeat
        already finds its pod named there (the api checks the sender's IP against it).
        """
        if not self.enabled or spec.namespace not in self.namespaces():
            return None
        if self.clock() < self._no_claims_until.get(spec.namespace, 0.0):
            return None
        if not is_warmable(spec):
            return None
        request = claim_message(
            spec.public_name, spec.api_url, credentials, tuple(claim_args(spec))
        )
        for key, pod, secret in self._candidates(spec.namespace, scheduler_profile(spec)):
            self._claiming[key] = self.clock()
            self._hold(spec.namespace, REFILL_DELAY)
            try:
                claimed = await self._claim_one(spec, key, pod, secret, request, announce)
            finally:
                self._hold(spec.namespace, REFILL_DELAY)
                asyncio.get_running_loop().call_later(REFILL_DELAY, self.wake)  # refill then
            if claimed:
                return key[1]
        return None

    async def _claim_one(
        self,
        spec: ClusterSpec,
        key: Key,
        pod: Obj,
        secret: Obj,
        request: Claim,
        announce: Callable[[str], Awaitable[None]] | None,
    ) -> bool:
        namespace, name = key
        try:
            marked = await self.client.patch(
                PODS, name, build_claim_mark(spec, pod, podstate.format_time(self.clock())),
                namespace,
            )  # fmt: skip
        except (Conflict, NotFound):
            self._claiming.pop(key, None)
            return False  # changed or gone meanwhile: the next one
        try:
            if announce is not None:
                await announce(name)
            await claim(
                podstate.pod_ip(pod) or "",
                CLAIM_PORT,
                _decode(secret, TLS_CERT_KEY),
                _decode(secret, TLS_KEY_KEY),
                request,
                self.warm.claim_timeout,
            )
            await self.client.patch(PODS, name, build_claim_patch(spec, marked), namespace)
        except (ClaimFailed, KubeError) as exc:
            log.warning("claim of warm pod %s/%s for %s failed (%s); deleting it, no claims "
                        "for %g s", namespace, name, spec.name, exc, CLAIM_BACKOFF)  # fmt: skip
            # per namespace: a NetworkPolicy in one must not turn claims off in all
            self._no_claims_until[namespace] = self.clock() + CLAIM_BACKOFF
            await self._delete(key)
            return False
        self.claims += 1
        log.info("cluster %s/%s claimed warm pod %s", namespace, spec.name, name)
        await self._delete_secret(key)
        return True
