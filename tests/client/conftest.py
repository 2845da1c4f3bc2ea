from __future__ import annotations

import dask
import pytest

import jhub_gateway.client  # noqa: F401 - loads the gateway.* config defaults
from tests.client.client_fakes import FakeGateway


@pytest.fixture
def fake():
    gw = FakeGateway().start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(autouse=True)
def quiet_progress():
    # Tests that check progress output turn it back on explicitly.
    with dask.config.set({"gateway.cluster.show-progress": False}):
        yield
