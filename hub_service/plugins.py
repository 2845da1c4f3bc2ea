"""Load a configurable class by short name or dotted path, with a clear error."""

from __future__ import annotations

from traitlets.utils.importstring import import_item


def load_class(kind: str, name: str, aliases: dict[str, str], base: type) -> type:
    """``name`` is a key of ``aliases`` or a dotted path to a subclass of ``base``."""
    path = aliases.get(name, name)
    try:
        cls = import_item(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot load {kind} {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(
            f"{kind} {name!r} is not a subclass of {base.__module__}.{base.__qualname__}"
        )
    return cls
