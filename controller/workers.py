"""Worker pods of a Running cluster: replace, grow, shrink, time out.

``spec.replicas`` (written by the api service from scheduler heartbeats) is the
count to converge to. Counting uses the cache plus our expectations, so pods
created a moment ago and not yet seen are counted, and pods deleted a moment
ago are not. Growing happens in batches of 1, 2, 4, ... within one reconcile,
stopping at the first refusal (e.g. a ResourceQuota), so a cluster asking for
500 workers in a full namespace costs one failed call, not 500. Shrinking
deletes pending pods only, newest first: running workers hold data, so the
scheduler picks and retires them, and a retired worker exits 0 (``Succeeded``)
and is deleted here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from jhub_gateway.kube.client import PODS

from . import podstate
from .builders import ClusterSpec, build_worker_pod, scheduler_pod_name
from .builders.scheduler import COMM_PORT
from .cache import POD

if TYPE_CHECKING:
    from .reconcile import Context, Reconciler

Obj = dict[str, Any]
MAX_BATCH = 64


async def reconcile_workers(r: Reconciler, ctx: Context, spec: ClusterSpec, scheduler: Obj) -> None:
    sched_name = ctx.scheduler or scheduler_pod_name(ctx.name)
    live = {n: p for n, p in r._live_pods(ctx).items() if n != sched_name}
    finished = [n for n, p in live.items() if podstate.is_finished(p)]
    active = {n: p for n, p in live.items() if n not in finished}
    unseen = r.expectations.creates(ctx.key, POD) - set(r.cache.children(POD, ctx.key))
    for name in finished:
        await r.delete_pod(ctx, name)

    timeout = r._timeout(ctx, "workerStartTimeout", r.settings.worker_start_timeout)
    for name, pod in sorted(active.items()):
        if podstate.is_ready(pod):
            continue
        created = podstate.created_at(pod) or ctx.now
        left = created + timeout - ctx.now
        if left <= 0:
            reason, message = podstate.start_failure(pod)
            r._fail(ctx, reason, f"worker {name}: {message} (after {timeout:g} s)")
            return
        ctx.requeue_in(left)

    desired = int((ctx.cluster.get("spec") or {}).get("replicas") or 0)
    count = len(active) + len(unseen)
    if count < desired:
        address = f"{podstate.pod_ip(scheduler)}:{COMM_PORT}"
        await _grow(r, ctx, dataclasses.replace(spec, scheduler_address=address), desired - count)
    elif count > desired:
        pending = [n for n, p in active.items() if podstate.phase(p) == "Pending"]
        pending.sort(key=lambda n: (podstate.created_at(active[n]) or 0.0, n), reverse=True)
        for name in pending[: count - desired]:
            await r.delete_pod(ctx, name)
    ready = sum(1 for p in active.values() if podstate.is_ready(p))
    ctx.status["replicas"] = ready
    ctx.scaling = ready != desired


async def _grow(r: Reconciler, ctx: Context, spec: ClusterSpec, missing: int) -> None:
    body = build_worker_pod(spec)
    batch = 1
    while missing > 0:
        size = min(batch, missing, MAX_BATCH)
        results = await asyncio.gather(
            *(r.client.create(PODS, body, ctx.namespace) for _ in range(size)),
            return_exceptions=True,
        )
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                r.expectations.expect_create(ctx.key, POD, result["metadata"]["name"])
        if failure is not None:
            raise failure  # the queue retries with backoff; the next batch starts at 1 again
        missing -= size
        batch *= 2
