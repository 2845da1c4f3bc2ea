"""Client configuration: the ``gateway.*`` keys in dask config.

Defaults come from ``gateway.yaml`` next to this module; users override them
with dask config files or ``DASK_GATEWAY__*`` environment variables. String
values are templates filled from the environment at use time, so a notebook
image can ship ``address: "http://{GATEWAY_HOST}"`` once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.config
import yaml
from dask.utils import parse_timedelta

_DEFAULTS_FILE = Path(__file__).with_name("gateway.yaml")


def load_defaults() -> None:
    """Merge our defaults under whatever the user configured (idempotent)."""
    with _DEFAULTS_FILE.open() as f:
        defaults = yaml.safe_load(f)
    # update_defaults keeps user-set values (files, env) on top of ours and
    # survives dask.config.refresh(); we deliberately do not write a file into
    # the user's ~/.config/dask on import.
    dask.config.update_defaults(defaults)


def format_template(value: Any) -> Any:
    """Fill ``{ENV_VAR}`` placeholders of a string from ``os.environ``.

    Non-strings pass through unchanged. A missing variable raises a ValueError
    that names it, instead of a bare KeyError from deep inside a constructor.
    """
    if not isinstance(value, str):
        return value
    try:
        return value.format(**os.environ)
    except KeyError as exc:
        raise ValueError(
            f"configuration value {value!r} refers to environment variable {exc.args[0]!r}, "
            "which is not set"
        ) from None


def get(key: str, default: Any = None) -> Any:
    """Read ``gateway.<key>`` from dask config, with templates filled in."""
    return format_template(dask.config.get(f"gateway.{key}", default))


def cluster_option_defaults() -> dict[str, Any]:
    """The configured default cluster options, templates filled in."""
    opts = dask.config.get("gateway.cluster.options", None) or {}
    return {k: format_template(v) for k, v in opts.items()}


def start_timeout() -> float | None:
    """Overall client-side start timeout in seconds (None or <= 0 disables it)."""
    value = dask.config.get("gateway.cluster.start-timeout", 600)
    if value is None:
        return None
    # parse_timedelta also accepts "10 minutes"-style strings, like the rest of dask.
    seconds = parse_timedelta(format_template(value), default="s")
    return seconds if seconds > 0 else None


def show_progress() -> bool:
    value = format_template(dask.config.get("gateway.cluster.show-progress", True))
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)
