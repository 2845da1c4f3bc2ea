from __future__ import annotations

import pytest

from tests.gatewaytools import running_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A real gateway (Traefik + local clusters), shared by a test module."""
    with running_gateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw
