"""``jhub-gateway --check-config``: validate a config file before deploying it.

It loads the file exactly as the service does, builds the authenticator, the
backend and a sample user's cluster options (running the options handler on
the defaults), and starts nothing: no socket, no Kubernetes or hub request.
Success prints the options specification as JSON (the ``GET /api/v1/options``
shape); failure is one line on stderr naming what to fix, and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any

from traitlets import TraitError
from traitlets.config import Configurable

from jhub_gateway.models import User
from jhub_gateway.options import OptionsError, resolve_options

if TYPE_CHECKING:
    from .app import GatewayApp

__all__ = ["CheckFailed", "check", "describe_error", "unknown_traits"]

SAMPLE_USER = User(name="check-config-user")


class CheckFailed(Exception):
    """The config cannot work; the message says what to fix."""


def describe_error(exc: BaseException, config_file: str) -> str:
    """One line for an exception raised while loading ``config_file``, with its line number."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename == config_file:
        where = f" (line {exc.lineno})"
    else:
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename == config_file:
                where = f" (line {frame.lineno})"
                break
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}: {message}" if message else f"{type(exc).__name__}{where}"


def _classes(objects: list[Any]) -> dict[str, type[Configurable]]:
    """Config section name -> class, for every Configurable class the objects are."""
    found: dict[str, type[Configurable]] = {}
    for obj in objects:
        for cls in type(obj).mro():
            if isinstance(cls, type) and issubclass(cls, Configurable) and cls is not Configurable:
                found.setdefault(cls.__name__, cls)
    return found


def unknown_traits(app: GatewayApp, extra: list[type[Configurable]]) -> tuple[list[str], list[str]]:
    """(misspelt ``Section.trait`` names of classes in use, sections no class in use reads)."""
    assert app.auth is not None and app.gateway_backend is not None
    classes = _classes([app, app.auth, app.gateway_backend])
    for cls in extra:
        for base in cls.mro():
            if isinstance(base, type) and issubclass(base, Configurable):
                classes.setdefault(base.__name__, base)
    bad: list[str] = []
    unused: list[str] = []
    for section, values in app.config.items():
        found = classes.get(section)
        if found is None:
            if section[:1].isupper():
                unused.append(section)
            continue
        cls = found
        names = set(cls.class_trait_names(config=True))
        # a section configures its subclasses too, so a trait of any class in use counts
        for other in classes.values():
            if issubclass(other, cls):
                names |= set(other.class_trait_names(config=True))
        bad.extend(f"{section}.{key}" for key in values if key not in names)
    return sorted(bad), sorted(unused)


async def _sample_options(app: GatewayApp) -> list[dict[str, Any]]:
    assert app.gateway_backend is not None
    try:
        options = await resolve_options(app.cluster_options, SAMPLE_USER)
    except TypeError as exc:
        raise CheckFailed(f"cluster_options: {exc}") from None
    except Exception as exc:
        raise CheckFailed(
            f"cluster_options({SAMPLE_USER.name!r}) raised {describe_error(exc, app.config_file)}"
        ) from None
    try:
        validated = options.parse({})
        overrides = await options.get_configuration(validated, SAMPLE_USER)
    except OptionsError as exc:
        raise CheckFailed(f"cluster options with their defaults are rejected: {exc}") from None
    try:
        app.gateway_backend.cluster_config_class(parent=app.gateway_backend, **overrides)
    except (TraitError, ValueError, TypeError) as exc:
        raise CheckFailed(
            f"cluster settings from the options defaults are invalid: {exc}"
        ) from None
    return options.get_specification()


def check(app: GatewayApp) -> dict[str, Any]:
    """Validate an initialized app; returns the options document or raises CheckFailed."""
    assert app.gateway_backend is not None
    bad, unused = unknown_traits(app, [app.gateway_backend.cluster_config_class])
    if bad:
        raise CheckFailed(f"unknown setting(s) {', '.join(bad)}: check the spelling")
    for section in unused:
        print(f"jhub-gateway: warning: nothing in use reads c.{section}", file=sys.stderr)
    spec = asyncio.run(_sample_options(app))
    return {"cluster_options": spec}


def main(app: GatewayApp) -> None:
    """Print the options document, or exit 1 with one line."""
    try:
        document = check(app)
    except CheckFailed as exc:
        raise SystemExit(f"jhub-gateway: {app.config_file}: {exc}") from None
    print(json.dumps(document, indent=2, default=str))
