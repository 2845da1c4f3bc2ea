"""The upstream ``dask_gateway`` client, unchanged, against our server."""

from __future__ import annotations

import dask_gateway
import pytest
from dask_gateway.auth import BasicAuth

from tests.polling import wait_for


def test_upstream_client_lifecycle(gateway):
    with dask_gateway.Gateway(gateway.address, auth=BasicAuth("alice", "")) as gw:
        opts = gw.cluster_options()
        assert opts.worker_cores == 1
        cluster = gw.new_cluster(worker_cores=1)
        try:
            assert gw.list_clusters()[0].name == cluster.name
            cluster.scale(2)
            client = cluster.get_client(set_as_default=False)
            client.wait_for_workers(2, timeout=90)
            assert client.submit(lambda x: x + 1, 41).result(timeout=60) == 42
            cluster.scale(1)
            wait_for(
                lambda: len(client.scheduler_info()["workers"]) == 1,
                timeout=60,
                what="scale down to 1",
            )
            client.close()
        finally:
            cluster.shutdown()
        reports = gw.list_clusters(status="stopped")
        assert [r.name for r in reports] == [cluster.name]


def test_upstream_client_validates_options_from_our_spec(gateway):
    with dask_gateway.Gateway(gateway.address, auth=BasicAuth("alice", "")) as gw:
        opts = gw.cluster_options()
        with pytest.raises(ValueError):
            opts.worker_cores = 99
        assert gw.list_clusters() == []
