"""Scheduler preload: ``dask scheduler --preload jhub_gateway.runtime.preload [options]``.

Environment (set by the backend):

- ``DASK_GATEWAY_API_URL``: the gateway API root, e.g. ``http://127.0.0.1:8000/api``;
- ``DASK_GATEWAY_API_TOKEN``: the cluster token, or a path to a file holding it
  (any value containing ``/``), as Kubernetes mounts it from a Secret;
- ``DASK_GATEWAY_CLUSTER_NAME``: the cluster's name.

Importing this module (distributed does, inside ``Scheduler.__init__``) already
guards the scheduler's dashboard with the credential derived from that token
(``jhub_gateway.runtime.dashboard``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
from distributed.comm.addressing import parse_host_port
from distributed.scheduler import Scheduler

from .. import redact
from ..dashboard_credential import dashboard_credential
from . import dashboard
from .service import PLUGIN_NAME, GatewaySchedulerService, RuntimeSettings

ENV_API_URL = "DASK_GATEWAY_API_URL"
ENV_API_TOKEN = "DASK_GATEWAY_API_TOKEN"
ENV_CLUSTER_NAME = "DASK_GATEWAY_CLUSTER_NAME"


def parse_api_address(value: str) -> tuple[str | None, int]:
    """``HOST:PORT``, ``:PORT`` (all interfaces) or ``""`` (scheduler's interface, free port)."""
    if not value:
        return None, 0
    if value.startswith(":"):
        host, port = "", value[1:]
        if not port.isdigit():
            raise click.BadParameter(f"invalid port in {value!r}")
        return host, int(port)
    try:
        host, port_num = parse_host_port(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return host, int(port_num)


def _read_token_now(value: str) -> str:
    return Path(value).read_text().strip() if "/" in value else value.strip()


async def _read_token(value: str) -> str:
    return await asyncio.to_thread(_read_token_now, value)


def _guard_dashboard_from_creation() -> None:
    """Runs at import, before distributed creates the HTTP server (see ``dashboard``)."""
    value = os.environ.get(ENV_API_TOKEN, "")
    try:
        token = _read_token_now(value) if value else ""
    except OSError:
        return  # load_settings reports it, and the scheduler does not start
    if token:
        dashboard.guard_from_creation(dashboard_credential(token))


_guard_dashboard_from_creation()


async def load_settings(
    api_address: str, heartbeat_period: float, adaptive_period: float, idle_timeout: float
) -> RuntimeSettings:
    missing = [
        k for k in (ENV_API_URL, ENV_API_TOKEN, ENV_CLUSTER_NAME) if not os.environ.get(k, "")
    ]
    if missing:
        raise RuntimeError(f"jhub_gateway.runtime.preload needs environment variables {missing}")
    token = await _read_token(os.environ[ENV_API_TOKEN])
    if not token:
        raise RuntimeError(f"{ENV_API_TOKEN} is empty")
    # Tracebacks in the scheduler log (the gateway shows its lines as cluster
    # events) must not carry the cluster token.
    redact.install()
    redact.register_secret(token)
    host, port = parse_api_address(api_address)
    return RuntimeSettings(
        api_url=os.environ[ENV_API_URL],
        cluster_name=os.environ[ENV_CLUSTER_NAME],
        token=token,
        api_host=host,
        api_port=port,
        heartbeat_period=heartbeat_period,
        adaptive_period=adaptive_period,
        idle_timeout=idle_timeout,
    )


@click.command()
@click.option(
    "--gateway-api-address",
    default="",
    show_default=True,
    help="HOST:PORT for the scheduler's gateway API (port 0 = any free port). "
    "Empty: the scheduler's own interface on a free port.",
)
@click.option(
    "--gateway-heartbeat-period",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Seconds between heartbeats; 0 sends them only on change (and at most hourly).",
)
@click.option(
    "--gateway-adaptive-period",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="Seconds between adaptive scaling decisions.",
)
@click.option(
    "--gateway-idle-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Ask the gateway to stop the cluster after this many idle seconds; 0 disables.",
)
async def dask_setup(
    scheduler: Scheduler,
    gateway_api_address: str,
    gateway_heartbeat_period: float,
    gateway_adaptive_period: float,
    gateway_idle_timeout: float,
) -> None:
    settings = await load_settings(
        gateway_api_address,
        gateway_heartbeat_period,
        gateway_adaptive_period,
        gateway_idle_timeout,
    )
    # Also here, in case the import-time hook did not see this scheduler's creation.
    dashboard.guard(scheduler, dashboard_credential(settings.token))
    service = GatewaySchedulerService(scheduler, settings)
    scheduler.add_plugin(service, name=PLUGIN_NAME)
    await service.start_service()


async def dask_teardown(scheduler: Scheduler) -> None:
    service = scheduler.plugins.get(PLUGIN_NAME)
    if isinstance(service, GatewaySchedulerService):
        await service.stop()
