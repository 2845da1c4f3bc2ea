"""Pytest fixture for the kubelet's own tests: the API emulator plus the kubelet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest_asyncio

from ..apiserver import launch
from .api import RawApi


class Cluster(NamedTuple):
    kubeconfig: Path
    api: RawApi
    workdir: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory) -> AsyncIterator[Cluster]:  # type: ignore[no-untyped-def]
    kube = await launch(tmp_path_factory.mktemp("kube"), kubelet=True)
    api = None
    try:
        api = await RawApi.from_kubeconfig(kube.kubeconfig)
        yield Cluster(kube.kubeconfig, api, kube.workdir)
    finally:
        if api is not None:
            await api.close()
        await kube.stop()
