"""The start-up trace that ``benchmarks/start_trace.py`` prints: its service-side steps exist.

Behaviour only (which steps are recorded, in which order); no timing is asserted.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.gatewaytools import running_gateway

TRACE = Path(__file__).resolve().parents[2] / "benchmarks" / "start_trace.py"


@pytest.fixture(scope="module")
def start_trace():
    spec = importlib.util.spec_from_file_location("start_trace", TRACE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_cold_start_is_traced_step_by_step(tmp_path, start_trace):
    with running_gateway(tmp_path) as gw:
        steps = start_trace.trace_one(gw.address, gw.data_dir)
    labels = [label for label, _ in steps]
    service = [
        "request accepted",
        "scheduler process spawned",
        "first heartbeat received",
        "routes written for Traefik",
        "routes live in Traefik (RUNNING)",
        "new_cluster() returned",
        "Client connected",
        "dashboard served through Traefik",
    ]
    # every step is there, and the service's own steps come in the order they happen
    assert [label for label in labels if label in service] == service
    scheduler = [
        "scheduler interpreter started",
        "distributed imported (first log line)",
        "scheduler state start",
        "TLS loaded, scheduler listening",
        "gateway runtime started (preload)",
        "dashboard attached (bokeh, after the first heartbeat)",
    ]
    assert set(scheduler) <= set(labels)
    at = dict(steps)
    assert at["TLS loaded, scheduler listening"] <= at["first heartbeat received"] + 0.01
    # the bokeh import is off the start path: attached only once the scheduler reported in
    attached = at["dashboard attached (bokeh, after the first heartbeat)"]
    assert attached > at["first heartbeat received"]
    assert attached <= at["dashboard served through Traefik"] + 0.01
    table = start_trace.format_trace(steps)
    assert all(label in table for label in labels)
