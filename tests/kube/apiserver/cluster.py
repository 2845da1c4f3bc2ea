"""``start_emulator``: the API emulator plus (when available) the process kubelet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .server import Emulator

log = logging.getLogger(__name__)


class KubeCluster:
    """A running emulator (and kubelet); ``kubeconfig`` works for kubectl and clients."""

    def __init__(self, emulator: Emulator, kubeconfig: Path, kubelet: Any | None) -> None:
        self.emulator = emulator
        self.kubeconfig = kubeconfig
        self.kubelet = kubelet

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def workdir(self) -> Path:
        return self.emulator.workdir

    async def stop(self) -> None:
        if self.kubelet is not None:
            kubelet, self.kubelet = self.kubelet, None
            await kubelet.stop()
        await self.emulator.stop()


def _kubelet_starter() -> Any | None:
    """The kubelet's ``start_kubelet`` if that package is importable (imported lazily)."""
    try:
        from ..kubelet import start_kubelet
    except ImportError as exc:
        log.info("process kubelet not available: %s", exc)
        return None
    return start_kubelet


async def launch(
    tmp_dir: Path,
    *,
    kubelet: bool = True,
    kubeconfig: Path | None = None,
    port: int = 0,
    history: int = 10000,
    rbac: bool = True,
    simulated: bool = False,
) -> KubeCluster:
    """Start the emulator (and the kubelet unless ``kubelet=False``).

    ``rbac=False``: no authentication/authorisation at all. ``simulated``: the
    kubelet runs no processes; pods become Running and Ready at once (KWOK-style).
    """
    tmp_dir = Path(tmp_dir)
    emulator = Emulator(tmp_dir / "work", port=port, history=history, rbac=rbac)
    await emulator.start()
    try:
        config = emulator.write_kubeconfig(kubeconfig or tmp_dir / "kubeconfig")
        node = None
        starter = _kubelet_starter() if kubelet else None
        if starter is not None:
            node = await starter(config, emulator.workdir, in_cluster_url=emulator.https_url,
                                 ca_pem=emulator.ca_pem, simulated=simulated)  # fmt: skip
    except BaseException:
        await emulator.stop()
        raise
    return KubeCluster(emulator, config, node)


@contextlib.asynccontextmanager
async def start_emulator(
    tmp_dir: Path,
    *,
    kubelet: bool = True,
    history: int = 10000,
    rbac: bool = True,
    simulated: bool = False,
) -> AsyncIterator[KubeCluster]:
    """``async with start_emulator(tmp) as k:`` -> ``k.url``, ``k.kubeconfig``, ``k.stop()``."""
    cluster = await launch(tmp_dir, kubelet=kubelet, history=history, rbac=rbac,
                           simulated=simulated)  # fmt: skip
    try:
        yield cluster
    finally:
        await cluster.stop()
