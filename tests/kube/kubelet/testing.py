"""Helpers for tests that drive pods through the API (not used by the kubelet)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.polling import until

from .api import ApiError, RawApi
from .kubelet import log_path

DEADLINE = 60.0


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float = DEADLINE, what: str = "condition"
) -> Any:
    """``until`` ``check`` is truthy; API and connection errors count as not yet."""
    last: list[Exception] = []

    async def attempt() -> Any:
        try:
            return await check()
        except (ApiError, OSError, aiohttp.ClientError) as exc:
            last[:] = [exc]
            return None

    try:
        return await until(attempt, timeout=timeout, interval=0.2, what=what)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc} (last error: {last[0] if last else None})") from None


class Kube:
    """Small typed-less client for tests: create objects and read them back."""

    def __init__(self, api: RawApi, workdir: Path, namespace: str) -> None:
        self.api = api
        self.workdir = workdir
        self.ns = namespace

    async def ensure_namespace(self) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}}
        try:
            await self.api.request("POST", "/api/v1/namespaces", body=body)
        except ApiError as exc:
            if exc.status != 409:
                raise

    def path(self, kind: str, name: str = "", group: str = "api/v1") -> str:
        base = f"/{group}/namespaces/{self.ns}/{kind}"
        return f"{base}/{name}" if name else base

    async def create(self, kind: str, body: dict, group: str = "api/v1") -> dict:
        return await self.api.request("POST", self.path(kind, group=group), body=body)

    async def get(self, kind: str, name: str, group: str = "api/v1") -> dict | None:
        try:
            return await self.api.request("GET", self.path(kind, name, group))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, kind: str, name: str, group: str = "api/v1") -> None:
        await self.api.request("DELETE", self.path(kind, name, group))

    def log(self, pod: str, container: str = "main") -> str:
        path = log_path(self.workdir, self.ns, pod, container)
        return path.read_text() if path.exists() else ""

    async def wait_log(self, pod: str, needle: str, container: str = "main") -> str:
        async def check() -> str:
            text = self.log(pod, container)
            return text if needle in text else ""

        return await wait_for(check, what=f"{needle!r} in log of {pod}")

    async def wait_pod(self, name: str, pred: Callable[[dict], bool], what: str) -> dict:
        async def check() -> dict | None:
            pod = await self.get("pods", name)
            return pod if pod and pred(pod) else None

        return await wait_for(check, what=f"pod {name}: {what}")


def pod(name: str, command: list[str], **spec: Any) -> dict:
    """A one-container pod (container "main") with POD_IP from the downward API."""
    labels = spec.pop("labels", {"app": name})
    container = {
        "name": "main",
        "image": "python:3",
        "command": command,
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        + spec.pop("env", []),
        **spec.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container], **spec},
    }


def ready(pod: dict) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def container_status(pod: dict) -> dict:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]
