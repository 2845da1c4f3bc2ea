"""Server-side cluster options: typed fields, validation and the wire specification.

Admins declare the options users may set when creating a cluster. The
specification (`Options.get_specification`) is what the upstream dask-gateway
client renders, so its JSON shape must stay exactly upstream's.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from collections.abc import Mapping as _MappingABC
from typing import Any

__all__ = [
    "Bool",
    "Field",
    "Float",
    "Integer",
    "Mapping",
    "Options",
    "OptionsError",
    "Select",
    "String",
    "resolve_options",
]


class OptionsError(ValueError):
    """A cluster options request (or the admin's handler) was rejected; the message is user-facing."""


def _type_name(x: Any) -> str:
    return type(x).__name__


class Field:
    """Base class of one user-settable option.

    ``field`` is the name users send, ``label`` the text a form shows and
    ``target`` the name the (transformed) value gets in the configuration.
    """

    type_name = ""

    def __init__(
        self,
        field: str,
        default: Any = None,
        label: str | None = None,
        target: str | None = None,
    ) -> None:
        if not isinstance(field, str) or not field:
            raise ValueError(f"option field name must be a non-empty string, got {field!r}")
        self.field = field
        self.label = label if label is not None else field
        self.target = target if target is not None else field
        # A bad default is an admin configuration error: fail when the config loads,
        # not on the first user request.
        try:
            self.default = self.validate(default)
        except OptionsError as exc:
            raise ValueError(f"invalid default for option {field!r}: {exc}") from None

    def validate(self, x: Any) -> Any:
        """Return the normalized value or raise OptionsError naming the field."""
        raise NotImplementedError

    def transform(self, x: Any) -> Any:
        """Map a validated value to what the configuration receives."""
        return x

    def get_default(self) -> Any:
        return self.default

    def type_spec(self) -> dict[str, Any]:
        return {"type": self.type_name}

    def json_spec(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "label": self.label,
            "default": self.get_default(),
            "spec": self.type_spec(),
        }

    def _error(self, expected: str, x: Any) -> OptionsError:
        return OptionsError(
            f"option {self.field!r} must be {expected}, got {x!r} ({_type_name(x)})"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.field!r}, default={self.get_default()!r})"


class String(Field):
    """A free-text option (default ``""``)."""

    type_name = "string"

    def __init__(
        self, field: str, default: str = "", label: str | None = None, target: str | None = None
    ) -> None:
        super().__init__(field, default, label, target)

    def validate(self, x: Any) -> str:
        if not isinstance(x, str):
            raise self._error("a string", x)
        return x


class Bool(Field):
    """A true/false option (default ``False``)."""

    type_name = "bool"

    def __init__(
        self, field: str, default: bool = False, label: str | None = None, target: str | None = None
    ) -> None:
        super().__init__(field, default, label, target)

    def validate(self, x: Any) -> bool:
        if not isinstance(x, bool):
            raise self._error("a boolean", x)
        return x


class _Number(Field):
    expected = ""

    def __init__(
        self,
        field: str,
        default: float = 0,
        min: float | None = None,
        max: float | None = None,
        label: str | None = None,
        target: str | None = None,
    ) -> None:
        # Bounds go through the same type check as values; unset while checking them.
        self.field = field
        self.min = self.max = None
        self.min = None if min is None else self._bound(min, "min")
        self.max = None if max is None else self._bound(max, "max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"option {field!r}: min ({self.min}) is greater than max ({self.max})")
        super().__init__(field, default, label, target)

    def _bound(self, value: Any, which: str) -> Any:
        try:
            return self._check_type(value)
        except OptionsError:
            raise ValueError(
                f"option {self.field!r}: {which} must be {self.expected}, got {value!r}"
            ) from None

    def _check_type(self, x: Any) -> Any:
        raise NotImplementedError

    def validate(self, x: Any) -> Any:
        x = self._check_type(x)
        if self.min is not None and x < self.min:
            raise OptionsError(f"option {self.field!r} must be >= {self.min}, got {x!r}")
        if self.max is not None and x > self.max:
            raise OptionsError(f"option {self.field!r} must be <= {self.max}, got {x!r}")
        return x

    def type_spec(self) -> dict[str, Any]:
        return {"type": self.type_name, "min": self.min, "max": self.max}


class Integer(_Number):
    """An integer option with optional inclusive ``min``/``max`` (default 0)."""

    type_name = "int"
    expected = "an integer"

    def _check_type(self, x: Any) -> int:
        # bool is an int subclass, but True is never a sensible worker count.
        if isinstance(x, bool) or not isinstance(x, int):
            raise self._error(self.expected, x)
        return x


class Float(_Number):
    """A number option with optional inclusive ``min``/``max``; integers are accepted."""

    type_name = "float"
    expected = "a number"

    def _check_type(self, x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise self._error(self.expected, x)
        x = float(x)
        if not math.isfinite(x):
            raise self._error("a finite number", x)
        return x


class Select(Field):
    """A choice between keys; each option is a key or a ``(key, value)`` pair.

    Users send the key; the configuration receives the value, which may be any
    Python object (a dict of resources for a "profile", for instance).
    """

    type_name = "select"

    def __init__(
        self,
        field: str,
        options: Iterable[Any],
        default: str | None = None,
        label: str | None = None,
        target: str | None = None,
    ) -> None:
        self.field = field
        self.options: dict[str, Any] = {}
        for opt in options:
            if isinstance(opt, tuple):
                if len(opt) != 2:
                    raise ValueError(
                        f"option {field!r}: choices must be keys or (key, value) pairs, got {opt!r}"
                    )
                key, value = opt
            else:
                key = value = opt
            if not isinstance(key, str):
                raise ValueError(f"option {field!r}: choice keys must be strings, got {key!r}")
            if key in self.options:
                raise ValueError(f"option {field!r}: duplicate choice {key!r}")
            self.options[key] = value
        if not self.options:
            raise ValueError(f"option {field!r}: at least one choice is required")
        if default is None:
            default = next(iter(self.options))
        super().__init__(field, default, label, target)

    def validate(self, x: Any) -> str:
        if not isinstance(x, str) or x not in self.options:
            choices = ", ".join(repr(k) for k in self.options)
            raise OptionsError(f"option {self.field!r} must be one of {choices}, got {x!r}")
        return x

    def transform(self, x: Any) -> Any:
        return self.options[x]

    def type_spec(self) -> dict[str, Any]:
        return {"type": self.type_name, "options": list(self.options)}


class Mapping(Field):
    """A free-form dict option (environment variables, labels, ...); default ``{}``."""

    type_name = "mapping"

    def __init__(
        self,
        field: str,
        default: dict[str, Any] | None = None,
        label: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(field, {} if default is None else default, label, target)

    def validate(self, x: Any) -> dict[str, Any]:
        if not isinstance(x, _MappingABC):
            raise self._error("a mapping", x)
        return copy.deepcopy(dict(x))

    def get_default(self) -> dict[str, Any]:
        # Every cluster gets its own copy so one request can't mutate another's default.
        return copy.deepcopy(self.default)


class FrozenAttrDict(_MappingABC):
    """Read-only mapping with attribute access, handed to option handlers."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("cluster options are read-only")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._data))

    def __repr__(self) -> str:
        return f"FrozenAttrDict({self._data!r})"


Handler = Callable[..., Any]


def _handler_takes_user(handler: Handler) -> bool:
    params = list(inspect.signature(handler).parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) == 1:
        return False
    if len(positional) == 2:
        return True
    raise ValueError(
        f"cluster options handler must take (options) or (options, user), "
        f"got signature {inspect.signature(handler)}"
    )


class Options:
    """The set of options users may pass when creating a cluster.

    ``handler(options)`` or ``handler(options, user)`` (sync or async) turns the
    validated options into configuration overrides; by default the transformed
    values are returned keyed by each field's ``target``.
    """

    def __init__(self, *fields: Field, handler: Handler | None = None) -> None:
        seen: set[str] = set()
        for f in fields:
            if not isinstance(f, Field):
                raise TypeError(f"Options takes Field instances, got {f!r}")
            if f.field in seen:
                raise ValueError(f"duplicate option field {f.field!r}")
            seen.add(f.field)
        self.fields: tuple[Field, ...] = fields
        self.handler = handler
        self._handler_takes_user = handler is not None and _handler_takes_user(handler)

    def __repr__(self) -> str:
        return f"Options({', '.join(map(repr, self.fields))})"

    def get_specification(self) -> list[dict[str, Any]]:
        return [f.json_spec() for f in self.fields]

    def parse(self, request: Any) -> dict[str, Any]:
        """Validate a user's request and fill defaults; raises OptionsError."""
        if request is None:
            request = {}
        if not isinstance(request, _MappingABC):
            raise OptionsError(
                "cluster options must be an object mapping option names to values, "
                f"got {_type_name(request)}"
            )
        known = {f.field for f in self.fields}
        unknown = [k for k in request if k not in known]
        if unknown:
            names = ", ".join(repr(k) for k in sorted(map(str, unknown)))
            if known:
                valid = ", ".join(repr(f.field) for f in self.fields)
                raise OptionsError(f"unknown cluster options: {names}; valid options are: {valid}")
            raise OptionsError(f"unknown cluster options: {names}; this gateway takes no options")
        return {
            f.field: f.validate(request[f.field]) if f.field in request else f.get_default()
            for f in self.fields
        }

    def transform(self, options: _MappingABC[str, Any]) -> dict[str, Any]:
        """Map validated options to their targets (Select keys become their values)."""
        return {
            f.target: f.transform(options[f.field] if f.field in options else f.get_default())
            for f in self.fields
        }

    async def get_configuration(self, options: _MappingABC[str, Any], user: Any) -> dict[str, Any]:
        """Run transforms and the admin's handler; handler failures become OptionsError."""
        transformed = self.transform(options)
        if self.handler is None:
            return transformed
        view = FrozenAttrDict(copy.deepcopy(transformed))
        try:
            result = self.handler(view, user) if self._handler_takes_user else self.handler(view)
            if inspect.isawaitable(result):
                result = await result
        except OptionsError:
            raise
        except Exception as exc:
            raise OptionsError(str(exc) or f"cluster options rejected ({_type_name(exc)})") from exc
        if not isinstance(result, _MappingABC):
            raise OptionsError(
                f"cluster options handler returned {_type_name(result)}, expected a mapping"
            )
        return dict(result)


ClusterOptions = Options | Callable[[Any], "Options | Awaitable[Options]"]


async def resolve_options(cluster_options: ClusterOptions, user: Any) -> Options:
    """Return the Options for ``user``: the configured Options, or a callable's result."""
    if isinstance(cluster_options, Options):
        return cluster_options
    if not callable(cluster_options):
        raise TypeError(
            f"cluster options must be Options or a callable(user) -> Options, got {cluster_options!r}"
        )
    result = cluster_options(user)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, Options):
        raise TypeError(
            f"cluster options callable returned {result!r}, expected an Options instance"
        )
    return result
