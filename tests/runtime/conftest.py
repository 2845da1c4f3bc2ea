"""Fixtures for the scheduler runtime tests (real processes, TLS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jhub_gateway.tls import new_keypair, tls_env, write_credentials
from tests.runtime.runtime_helpers import Processes


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    p = Processes(tmp_path_factory.mktemp("logs"))
    yield p
    p.stop_all()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cert, key = new_keypair("test-cluster")
    cert_path, key_path = write_credentials(tmp_path_factory.mktemp("tls"), cert, key)
    return tls_env(cert_path, key_path)
