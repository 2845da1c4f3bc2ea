"""Run configuration files written for upstream dask-gateway-server, unchanged.

Three pieces:

- :func:`upstream_modules` makes ``dask_gateway_server.options`` importable
  *while our config file loads*, mapped onto :mod:`jhub_gateway.options` (the
  classes take the same arguments). Whatever ``sys.modules`` held before is put
  back afterwards, so an installed upstream package is untouched elsewhere.
- :func:`translate` moves upstream's section and trait names onto ours
  (``c.Backend.cluster_options``, ``c.DaskGateway.*``, upstream class paths).
- :func:`adapt_cluster_options` gives option handlers upstream's semantics for
  keys that are not cluster settings: a logged warning, not a failure.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
import types
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from traitlets.config import Config

from jhub_gateway import options as our_options
from jhub_gateway.options import Options

__all__ = [
    "UPSTREAM_CLASSES",
    "KnownSettingsOptions",
    "adapt_cluster_options",
    "translate",
    "upstream_modules",
]

log = logging.getLogger("jhub_gateway.hub_service")

_SHIMMED = ("dask_gateway_server", "dask_gateway_server.options")

#: upstream class paths an ``authenticator_class``/``backend_class`` may name -> ours
UPSTREAM_CLASSES = {
    "dask_gateway_server.auth.SimpleAuthenticator": "simple",
    "dask_gateway_server.auth.KerberosAuthenticator": "kerberos",
    "dask_gateway_server.auth.JupyterHubAuthenticator": "jupyterhub",
    "dask_gateway_server.backends.kubernetes.KubeBackend": "kubernetes",
    "dask_gateway_server.backends.kubernetes.backend.KubeBackend": "kubernetes",
    "dask_gateway_server.backends.local.LocalBackend": "local",
    "dask_gateway_server.backends.local.UnsafeLocalBackend": "local",
}

#: upstream trait names on sections we share -> ours
_RENAMED = {
    ("JupyterHubAuthenticator", "jupyterhub_api_token"): "api_token",
    ("JupyterHubAuthenticator", "jupyterhub_api_url"): "api_url",
}

#: upstream DaskGateway traits -> (our section, trait); others are dropped with a warning
_DASK_GATEWAY = {
    "authenticator_class": ("GatewayApp", "authenticator"),
    "backend_class": ("GatewayApp", "backend"),
    "log_level": ("Application", "log_level"),
}


def _shim_modules() -> dict[str, types.ModuleType]:
    package = types.ModuleType(
        "dask_gateway_server", "jhub-gateway's stand-in for upstream config files"
    )
    package.__path__ = []  # a package, so ``import dask_gateway_server.options`` works
    opts = types.ModuleType("dask_gateway_server.options", "cluster options (jhub_gateway.options)")
    for name in ("Options", "Integer", "Float", "String", "Select", "Bool", "Mapping", "Field"):
        setattr(opts, name, getattr(our_options, name))
    opts.__dict__["__all__"] = [
        "Options",
        "Integer",
        "Float",
        "String",
        "Select",
        "Bool",
        "Mapping",
    ]
    package.options = opts  # type: ignore[attr-defined]
    return {"dask_gateway_server": package, "dask_gateway_server.options": opts}


@contextlib.contextmanager
def upstream_modules() -> Iterator[None]:
    """While active, ``dask_gateway_server.options`` is ours; afterwards, as before.

    Upstream's real classes would not work with our service (different base
    classes), so ours win even when upstream is installed; the previous
    ``sys.modules`` entries (or their absence) are restored on exit.
    """
    saved = {name: sys.modules.get(name) for name in _SHIMMED}
    sys.modules.update(_shim_modules())
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _class_name(value: Any) -> Any:
    """An upstream class path becomes our short name; classes and other names pass."""
    if isinstance(value, str):
        return UPSTREAM_CLASSES.get(value, value)
    if isinstance(value, type) and value.__module__.startswith("dask_gateway_server"):
        return UPSTREAM_CLASSES.get(f"{value.__module__}.{value.__qualname__}", value)
    return value


def translate(config: Config) -> list[str]:
    """Rewrite upstream names in ``config`` in place; returns what was dropped."""
    dropped: list[str] = []
    backend = config.get("Backend")
    if isinstance(backend, Config) and "cluster_options" in backend:
        value = backend.pop("cluster_options")
        if "cluster_options" not in config.GatewayApp:
            config.GatewayApp.cluster_options = value
    upstream_app = config.get("DaskGateway")
    if isinstance(upstream_app, Config):
        for trait, value in list(upstream_app.items()):
            target = _DASK_GATEWAY.get(trait)
            if target is None:
                dropped.append(f"DaskGateway.{trait}")
                continue
            section, name = target
            if name not in config[section]:
                config[section][name] = _class_name(value)
        del config["DaskGateway"]
    for key in ("authenticator", "backend"):
        if key in config.GatewayApp:
            config.GatewayApp[key] = _class_name(config.GatewayApp[key])
    for (section, old), new in _RENAMED.items():
        part = config.get(section)
        if isinstance(part, Config) and old in part:
            value = part.pop(old)
            part.setdefault(new, value)
    return dropped


class KnownSettingsOptions(Options):
    """Options whose handler output is cut to real cluster settings, as upstream does.

    Upstream logs keys a handler returns that are not config fields and carries
    on; failing would break configs that worked there. A typo stays visible in
    the log.
    """

    def __init__(
        self,
        options: Options,
        known: frozenset[str],
        logger: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        super().__init__(*options.fields, handler=options.handler)
        self.known = known
        self._log = logger

    async def get_configuration(self, options: Mapping[str, Any], user: Any) -> dict[str, Any]:
        result = await super().get_configuration(options, user)
        unknown = sorted(set(result) - self.known)
        if unknown:
            self._log.warning(
                "cluster options handler returned unknown settings, ignored: %s", unknown
            )
            result = {k: v for k, v in result.items() if k in self.known}
        return result


def _known_only(
    options: Options, known: frozenset[str], logger: logging.Logger | logging.LoggerAdapter
) -> Options:
    if isinstance(options, KnownSettingsOptions) and options.known == known:
        return options
    return KnownSettingsOptions(options, known, logger)


def adapt_cluster_options(
    cluster_options: Any,
    config_class: type,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Any:
    """Wrap ``Options`` (or a ``user -> Options`` function) so unknown handler keys warn."""
    logger = logger or log
    known = frozenset(config_class.class_trait_names(config=True))  # type: ignore[attr-defined]
    if isinstance(cluster_options, Options):
        return _known_only(cluster_options, known, logger)
    if not callable(cluster_options):
        return cluster_options  # resolve_options reports the type error

    async def for_user(user: Any) -> Any:
        result: Any = cluster_options(user)
        if inspect.isawaitable(result):
            result = await result
        return _known_only(result, known, logger) if isinstance(result, Options) else result

    wrapped: Callable[[Any], Awaitable[Any]] = for_user
    return wrapped
