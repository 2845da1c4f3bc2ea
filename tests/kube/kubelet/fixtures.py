"""Pytest fixture for the kubelet's own tests: an API server plus a kubelet.

For now it serves the API with the small in-process :mod:`stubapi`; once the
full emulator (``tests/kube/apiserver``) exists, this fixture should start that
instead (the tests only rely on the kubeconfig, a RawApi and the workdir).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest_asyncio

from . import start_kubelet
from .api import RawApi
from .stubapi import StubApiServer


class Cluster(NamedTuple):
    kubeconfig: Path
    api: RawApi
    workdir: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory) -> AsyncIterator[Cluster]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("kube")
    kubeconfig, workdir = tmp / "kubeconfig", tmp / "work"
    server = StubApiServer()
    await server.start(kubeconfig)
    kubelet = api = None
    try:
        kubelet = await start_kubelet(kubeconfig, workdir)
        api = await RawApi.from_kubeconfig(kubeconfig)
        yield Cluster(kubeconfig, api, workdir)
    finally:
        if api is not None:
            await api.close()
        if kubelet is not None:
            await kubelet.stop()
        await server.stop()
