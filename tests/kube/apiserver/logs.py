"""``pods/log``: container logs the process kubelet writes to files.

The kubelet appends each container's output to
``<workdir>/logs/<namespace>_<pod>_<container>.log``; this reads the same files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from . import errors
from .resources import ResourceType
from .verbs import Api

POLL = 0.2


def log_file(log_dir: Path, ns: str, pod: str, container: str) -> Path:
    return log_dir / f"{ns}_{pod}_{container}.log"


def _read(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


async def serve_log(
    request: web.Request,
    api: Api,
    rt: ResourceType,
    ns: str,
    name: str,
    log_dir: Path | None,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    pod = api.must_get(rt, ns, name)
    spec = pod.get("spec") or {}
    names = [c["name"] for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    container = request.query.get("container")
    if not container:
        if len(spec.get("containers") or []) != 1:
            raise errors.bad_request(f"a container name must be specified for pod {name}, "
                                     f"choose one of: {names}")  # fmt: skip
        container = names[0]
    if container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    path = log_file(log_dir, ns, name, container) if log_dir else None
    if path is None or not await asyncio.to_thread(path.exists):
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase == "Pending":
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to '
                                     "start: ContainerCreating")  # fmt: skip
    data = await asyncio.to_thread(_read, path, 0) if path else b""
    offset = len(data)
    if "tailLines" in request.query:
        data = _tail(data, int(request.query["tailLines"]))
    if "limitBytes" in request.query:
        data = data[: int(request.query["limitBytes"])]
    if request.query.get("follow", "").lower() not in ("true", "1"):
        return web.Response(body=data, content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    try:
        await resp.write(data)
        while not stopping.is_set() and path is not None:
            if api.store.get(rt.storage_key, ns, name) is None:
                break
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            chunk = await asyncio.to_thread(_read, path, offset)
            if chunk:
                offset += len(chunk)
                await resp.write(chunk)
            else:
                await asyncio.sleep(POLL)
    except (ConnectionResetError, ConnectionError):
        pass
    return resp
