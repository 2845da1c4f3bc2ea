from __future__ import annotations

import pytest

from tests.gatewaytools import GatewayProcess


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A real gateway (Traefik + local clusters), shared by a test module."""
    gw = GatewayProcess(tmp_path_factory.mktemp("gateway"))
    gw.start()
    try:
        yield gw
    finally:
        gw.kill_everything()
        assert gw.processes_under(gw.data_dir) == []
