"""Without a gateway address the extension stays out of the way: dask-labextension answers."""

from __future__ import annotations

from tests.lab.labtools import running_lab


def test_without_a_gateway_address_dask_labextension_keeps_its_own_handlers(tmp_path):
    with running_lab(tmp_path, {}) as lab:
        status, body, _ = lab.request("GET", "/dask/clusters")
        assert (status, body) == (200, [])
        status, body, _ = lab.request("GET", "/dask/clusters/a-b-c-d-e")
        # dask-labextension's own 404 carries no reason; ours would say "not_found"
        assert status == 404 and body["reason"] is None
        log = lab.log_text()
    assert "jhub_gateway.client.lab | extension was successfully loaded" in log
    assert "the Dask sidebar shows clusters of" not in log
