"""Fixtures that run the Kubernetes API emulator (and the process kubelet if present).

``kube_cluster`` is the emulator plus kubelet (pods really run); ``kube_emulator``
is the API server alone (pods stay Pending). Both are module-scoped: use them
from tests marked ``pytest.mark.asyncio(loop_scope="module")``. Outside pytest,
use ``async with tests.kube.apiserver.start_emulator(tmp_dir) as k``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .apiserver import KubeCluster, launch


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube_cluster(tmp_path_factory) -> AsyncIterator[KubeCluster]:  # type: ignore[no-untyped-def]
    cluster = await launch(tmp_path_factory.mktemp("kube"), kubelet=True)
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube_emulator(tmp_path_factory) -> AsyncIterator[KubeCluster]:  # type: ignore[no-untyped-def]
    cluster = await launch(tmp_path_factory.mktemp("kube"), kubelet=False)
    try:
        yield cluster
    finally:
        await cluster.stop()
