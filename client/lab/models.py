"""dask-labextension's cluster model, built from one gateway cluster dict.

Everything comes from the list response: no connection to any scheduler.
Cores and memory are the running workers times each worker's size, as our
server reports it (``workers.cores`` / ``workers.memory`` in bytes); from a
server that does not, the ``worker_cores`` / ``worker_memory`` options stand in
(memory in GiB when a number, as in upstream's chart).
"""

from __future__ import annotations

import json
from typing import Any

from dask.utils import format_bytes, parse_bytes

from .ids import id_from_name

__all__ = ["client_code_address", "cluster_model"]

_GIB = 2**30


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def _memory_bytes(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(parse_bytes(value))
        except ValueError:
            return 0
    return int(_number(value) * _GIB)


def _worker_memory(workers: dict[str, Any], options: dict[str, Any]) -> int:
    if "memory" in workers:
        return int(_number(workers["memory"]))  # bytes, from our server
    return _memory_bytes(options.get("worker_memory"))


def client_code_address(name: str) -> str:
    """A ``scheduler_address`` that makes the sidebar's "inject client code" work.

    The sidebar pastes ``client = Client("<scheduler_address>")``; a gateway
    scheduler needs its TLS credentials, so the address closes that call
    harmlessly and connects through the gateway instead.
    """
    return (
        '") if False else None  # connect through the gateway instead:\n'
        "from jhub_gateway import Gateway\n\n"
        f"client = Gateway().connect({json.dumps(name)}).get_client()\n#"
    )


def cluster_model(
    wire: dict[str, Any], dashboard_base: str, adapt: dict[str, int] | None = None
) -> dict[str, Any]:
    """The labextension's JSON model of one cluster (``id``, ``workers``, ``cores``...)."""
    name = str(wire["name"])
    workers = wire.get("workers") or {}
    active = int(_number(workers.get("active")))
    options = wire.get("options") or {}
    running = wire.get("status") == "RUNNING"
    model: dict[str, Any] = {
        "id": id_from_name(name),
        "name": name if running else f"{name} ({str(wire.get('status', '')).lower()})",
        "scheduler_address": client_code_address(name),
        "dashboard_link": f"{dashboard_base}/status" if running else "",
        "workers": active,
        "cores": round(active * _number(workers.get("cores", options.get("worker_cores"))), 2),
        "memory": format_bytes(active * _worker_memory(workers, options)),
    }
    if adapt is not None:
        model["adapt"] = dict(adapt)
    return model
