"""Fixtures for controller tests: an API-only emulator and a KubeClient, per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from jhub_gateway.kube.client import KubeClient
from tests.kube.apiserver import KubeCluster, launch


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KubeCluster]:
    cluster = await launch(tmp_path_factory.mktemp("kube"), kubelet=False)
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(kube: KubeCluster) -> AsyncIterator[KubeClient]:
    async with await KubeClient.connect(kube.kubeconfig) as kube_client:
        yield kube_client
