"""Gateway cluster names map to ids dask-labextension 7.0.0's routes accept, and back."""

from __future__ import annotations

import re

import pytest

from jhub_gateway.client.lab.ids import ID_PATTERN, id_from_name, name_from_id
from jhub_gateway.client.lab.models import cluster_model

NAMES = ["0123456789abcdef0123456789abcdef", "ns.0123456789abcdef", "my-cluster", "a_b", "x"]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_has_an_accepted_id_that_maps_back(name):
    cluster_id = id_from_name(name)
    assert re.fullmatch(ID_PATTERN, cluster_id)
    assert name_from_id(cluster_id) == name


def test_hex_names_read_as_uuids():
    assert (
        id_from_name("0123456789abcdef0123456789abcdef") == "01234567-89ab-cdef-0123-456789abcdef"
    )


@pytest.mark.parametrize("cluster_id", ["a-b-c-d-e", "-n-a-m-e", "a%b-n-a-m-e", "a_zb-n-a-m-e"])
def test_other_ids_name_no_cluster(cluster_id):
    assert name_from_id(cluster_id) is None


def test_counts_come_from_the_listing_entry():
    wire = {
        "name": "c1",
        "status": "RUNNING",
        "options": {"worker_cores": 2, "worker_memory": "1 GiB"},
        "workers": {"requested": 3, "active": 3},
    }
    model = cluster_model(wire, "https://hub/services/dask-gateway/clusters/c1")
    assert (model["workers"], model["cores"], model["memory"]) == (3, 6, "3.00 GiB")
    assert model["dashboard_link"] == "https://hub/services/dask-gateway/clusters/c1/status"
    pending = cluster_model({**wire, "status": "PENDING", "workers": None}, "x")
    assert (pending["name"], pending["dashboard_link"], pending["workers"]) == (
        "c1 (pending)",
        "",
        0,
    )


def test_the_servers_worker_size_wins_over_the_options():
    wire = {
        "name": "c1",
        "status": "RUNNING",
        # options a deployment named its own way; the server says what a worker holds
        "options": {"size": "large"},
        "workers": {"requested": 2, "active": 2, "cores": 4.0, "memory": 8 * 2**30},
    }
    model = cluster_model(wire, "x")
    assert (model["cores"], model["memory"]) == (8, "16.00 GiB")
