"""``/api/v1/clusters``: the upstream-compatible cluster API plus events."""

from __future__ import annotations

from jhub_gateway.models import Cluster, ClusterStatus

from ..adaptive import parse_bounds
from ..errors import InvalidOptions
from .base import BaseHandler
from .event_stream import ServerSentEvents, stream_events, wants_stream

WAIT_SECONDS = 20.0  # long-poll length of ``?wait`` (upstream's client re-polls after it)


def parse_status_filter(raw: str | None) -> set[ClusterStatus]:
    if not raw:
        return {ClusterStatus.PENDING, ClusterStatus.RUNNING}
    try:
        return {ClusterStatus.from_name(part) for part in raw.split(",") if part.strip()}
    except ValueError as exc:
        raise InvalidOptions(str(exc)) from None


def cluster_wire(handler: BaseHandler, cluster: Cluster) -> dict:
    """A cluster for its owner: upstream's fields, plus ours (with each worker's size)
    for clients that ask for them."""
    wire = cluster.to_wire(include_credentials=True, extended=handler.extended)
    if handler.extended:
        footprint = handler.clusters.footprint(cluster)
        wire["workers"]["cores"] = footprint.worker_cores
        wire["workers"]["memory"] = footprint.worker_memory
        wire["adaptive"] = handler.clusters.adaptive.get(cluster)
    return wire


class ClustersHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.authenticate()
        statuses = parse_status_filter(self.get_query_argument("status", None))
        clusters = self.clusters.list_for(user, statuses)
        self.write_json({c.name: cluster_wire(self, c) for c in clusters})

    async def post(self) -> None:
        user = await self.authenticate()
        body = self.json_body()
        unknown = set(body) - {"cluster_options"}
        if unknown:
            raise InvalidOptions(
                f"unknown request fields: {sorted(unknown)}; expected cluster_options"
            )
        cluster = await self.clusters.create(user, body)
        self.write_json({"name": cluster.name}, status=201)


class ClusterHandler(BaseHandler):
    async def get(self, name: str) -> None:
        user = await self.authenticate()
        if self.get_query_argument("wait", None) is not None:
            cluster = await self.clusters.wait_until_settled(user, name, WAIT_SECONDS)
        else:
            cluster = await self.clusters.find(user, name)
        self.write_json(cluster_wire(self, cluster))

    async def delete(self, name: str) -> None:
        # the scheduler's own request (idle timeout) carries its cluster token; anything
        # else (a hub token in the same "token" scheme, say) authenticates a user
        if _cluster_token(self) is not None:
            await self.clusters.ensure_known(name)
        scheduler_cluster = self.clusters.scheduler_of(name, _cluster_token(self))
        if scheduler_cluster is not None:
            await self.clusters.stop_by_scheduler(scheduler_cluster)
        else:
            user = await self.authenticate()
            await self.clusters.stop(user, name)
        self.set_status(204)
        self.finish()


class ScaleHandler(BaseHandler):
    async def post(self, name: str) -> None:
        user = await self.authenticate()
        body = self.json_body()
        unknown = set(body) - {"count"}
        if unknown or "count" not in body:
            raise InvalidOptions('expected a JSON body {"count": <non-negative integer>}')
        result = await self.clusters.scale(user, name, body["count"])
        self.write_json(result.to_dict())


class AdaptHandler(BaseHandler):
    async def post(self, name: str) -> None:
        user = await self.authenticate()
        result = await self.clusters.adapt(user, name, self.json_body())
        self.write_json(result.to_dict())


class EventsHandler(ServerSentEvents):
    async def get(self, name: str) -> None:
        if wants_stream(self.request.headers.get("Accept")):
            await stream_events(self, name)
            return
        user = await self.authenticate()
        cluster = await self.clusters.find(user, name)
        self.write_json(
            {
                "name": cluster.name,
                "status": cluster.status.name,
                "reason": cluster.reason,
                "message": cluster.message,
                "events": [e.to_dict() for e in cluster.events],
            }
        )


class HeartbeatHandler(BaseHandler):
    """Schedulers report in here, authenticated by their cluster token only."""

    async def post(self, name: str) -> None:
        if _cluster_token(self) is not None:
            await self.clusters.ensure_known(name)
        cluster = self.clusters.authenticate_scheduler(name, _cluster_token(self))
        await self.clusters.heartbeat(cluster, parse_heartbeat(self.json_body()))
        self.set_status(200)
        self.finish()


_HEARTBEAT_ADDRESSES = ("scheduler_address", "dashboard_address", "api_address")
_HEARTBEAT_LISTS = ("active_workers", "closing_workers", "closed_workers")


def parse_heartbeat(raw: dict) -> dict:
    """Check a heartbeat's shape: it comes from code the cluster's user controls."""
    body = {
        k: v
        for k, v in raw.items()
        if k in ("count", "idle_seconds", *_HEARTBEAT_ADDRESSES, *_HEARTBEAT_LISTS)
    }
    count = body.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidOptions("heartbeat count must be a non-negative integer")
    idle = body.get("idle_seconds", 0.0)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 0 <= idle < 1e12:
        raise InvalidOptions("heartbeat idle_seconds must be a non-negative number of seconds")
    for key in _HEARTBEAT_ADDRESSES:
        if not isinstance(body.get(key, ""), str):
            raise InvalidOptions(f"heartbeat {key} must be a string")
    for key in _HEARTBEAT_LISTS:
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidOptions(f"heartbeat {key} must be a list of worker names")
    if "adaptive" in raw:
        try:
            body["adaptive"] = parse_bounds(raw["adaptive"])
        except ValueError as exc:
            raise InvalidOptions(f"heartbeat {exc}") from None
    return body


def _cluster_token(handler: BaseHandler) -> str | None:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "token" and value.strip():
        return value.strip()
    return None


handlers = [
    (r"api/v1/clusters/?", ClustersHandler),
    (r"api/v1/clusters/([^/]+)", ClusterHandler),
    (r"api/v1/clusters/([^/]+)/scale", ScaleHandler),
    (r"api/v1/clusters/([^/]+)/adapt", AdaptHandler),
    (r"api/v1/clusters/([^/]+)/events", EventsHandler),
    (r"api/v1/clusters/([^/]+)/heartbeat", HeartbeatHandler),
]
