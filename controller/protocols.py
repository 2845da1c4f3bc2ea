"""The slice of :class:`~jhub_gateway.kube.client.KubeClient` the reconciler uses.

Spelled out so unit tests can pass a recording fake with the same signatures.
"""

from __future__ import annotations

from typing import Any, Protocol

from jhub_gateway.kube.client import Resource

Obj = dict[str, Any]


class ApiClient(Protocol):
    async def create(self, resource: Resource, body: Obj, namespace: str | None = None) -> Obj: ...

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
    ) -> Obj: ...

    async def patch_status(
        self, resource: Resource, name: str, patch: Any, namespace: str | None = None
    ) -> Obj: ...

    async def delete(self, resource: Resource, name: str, namespace: str | None = None) -> Obj: ...

    async def delete_collection(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str
    ) -> Obj: ...

    async def pod_log(self, name: str, namespace: str, *, tail_lines: int = 20) -> str: ...
