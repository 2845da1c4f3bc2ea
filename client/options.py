"""Client-side cluster options, built from the server's option specification.

The server publishes ``[{"field", "label", "default", "spec": {"type", ...}}]``
(``GET /api/v1/options``). ``Options`` validates values locally with the same
rules as the server so mistakes surface at assignment time, not at submit.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Iterator, MutableMapping, Sequence
from keyword import iskeyword
from typing import Any, ClassVar

__all__ = ["Options"]


class Field:
    """One option: a name, a label, a current value and a validation rule."""

    type_name: ClassVar[str] = "any"
    registry: ClassVar[dict[str, type[Field]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Only concrete wire types register; helper bases inherit a type_name.
        if "type_name" in cls.__dict__:
            Field.registry[cls.type_name] = cls

    def __init__(self, field: str, default: Any, label: str | None = None, **_: Any) -> None:
        self.field = field
        self.label = label or field
        self.default = self.validate(default)
        self.value = copy.deepcopy(self.default)

    def validate(self, value: Any) -> Any:
        return value

    def set(self, value: Any) -> None:
        self.value = self.validate(value)

    def describe(self) -> str:
        return self.type_name

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> Field:
        type_spec = dict(spec.get("spec") or {})
        type_name = type_spec.pop("type", "any")
        # A newer server may add field types; accept them unvalidated rather
        # than refusing to build the whole form.
        cls = Field.registry.get(type_name, Field)
        return cls(spec["field"], spec.get("default"), label=spec.get("label"), **type_spec)


class String(Field):
    type_name = "string"

    def validate(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{self.field} must be a string, got {value!r}")
        return value


class Bool(Field):
    type_name = "bool"

    def validate(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"{self.field} must be a bool, got {value!r}")
        return value


class _Number(Field):
    _python_type: ClassVar[type] = int

    def __init__(
        self,
        field: str,
        default: Any,
        label: str | None = None,
        min: Any = None,
        max: Any = None,
        **kw: Any,
    ) -> None:
        self.field = field
        self.min = self.max = None
        self.min = None if min is None else self._coerce(min)
        self.max = None if max is None else self._coerce(max)
        super().__init__(field, default, label=label, **kw)

    def _coerce(self, value: Any) -> Any:
        raise NotImplementedError

    def validate(self, value: Any) -> Any:
        value = self._coerce(value)
        if self.min is not None and value < self.min:
            raise ValueError(f"{self.field} must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise ValueError(f"{self.field} must be <= {self.max}, got {value}")
        return value

    def describe(self) -> str:
        lo = "" if self.min is None else f"{self.min} <= "
        hi = "" if self.max is None else f" <= {self.max}"
        return f"{lo}{self.type_name}{hi}"


class Integer(_Number):
    type_name = "int"

    def _coerce(self, value: Any) -> int:
        # bool is an int subclass, but True workers is always a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.field} must be an integer, got {value!r}")
        return value


class Float(_Number):
    type_name = "float"

    def _coerce(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{self.field} must be a float, got {value!r}")
        return float(value)


class Select(Field):
    type_name = "select"

    def __init__(
        self,
        field: str,
        default: Any,
        label: str | None = None,
        options: Sequence[str] = (),
        **kw: Any,
    ) -> None:
        if isinstance(options, str) or not isinstance(options, Sequence):
            raise TypeError(f"{field}: select options must be a sequence of strings")
        if not options:
            raise ValueError(f"{field}: a select field needs at least one option")
        for opt in options:
            if not isinstance(opt, str):
                raise TypeError(f"{field}: select options must be strings, got {opt!r}")
        self.field = field
        self.options = tuple(options)
        super().__init__(field, self.options[0] if default is None else default, label, **kw)

    def validate(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{self.field} must be a string, got {value!r}")
        if value not in self.options:
            choices = ", ".join(repr(o) for o in self.options)
            raise ValueError(f"{value!r} is not a valid option for {self.field} ({choices})")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(self.options)


class Mapping(Field):
    type_name = "mapping"

    def validate(self, value: Any) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise TypeError(f"{self.field} must be a dict, got {type(value).__name__!r}")
        return copy.deepcopy(value)


class Options(MutableMapping):
    """The cluster options a user may set, with validation on assignment.

    Use item or attribute access: ``opts["worker_cores"] = 2`` or
    ``opts.worker_cores = 2``. Unknown names raise KeyError/AttributeError,
    invalid values TypeError/ValueError. Fields cannot be deleted.
    """

    def __init__(self, *fields: Field) -> None:
        object.__setattr__(self, "_fields", {f.field: f for f in fields})

    @classmethod
    def _from_spec(cls, spec: Sequence[dict[str, Any]]) -> Options:
        return cls(*(Field.from_spec(s) for s in spec))

    def _field(self, key: str, missing: type[Exception]) -> Field:
        try:
            return self._fields[key]
        except KeyError:
            raise missing(f"No option {key!r} available") from None

    def __getitem__(self, key: str) -> Any:
        return self._field(key, KeyError).value

    def __setitem__(self, key: str, value: Any) -> None:
        self._field(key, KeyError).set(value)

    def __delitem__(self, key: str) -> None:
        raise TypeError("Cannot delete option fields")

    def __getattr__(self, key: str) -> Any:
        # Dunders and our own slot must not recurse into _field (copy, pickle).
        if key.startswith("__") or key == "_fields":
            raise AttributeError(key)
        return self._field(key, AttributeError).value

    def __setattr__(self, key: str, value: Any) -> None:
        self._field(key, AttributeError).set(value)

    def __delattr__(self, key: str) -> None:
        raise TypeError("Cannot delete option fields")

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        names.update(k for k in self._fields if k.isidentifier() and not iskeyword(k))
        return sorted(names)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={f.value!r}" for k, f in self._fields.items())
        return f"Options<{inner}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr><th style='text-align:left'>{}</th><td>{}</td><td><i>{}</i></td></tr>".format(
                *(html.escape(s) for s in (f.label, repr(f.value), f.describe()))
            )
            for f in self._fields.values()
        )
        return (
            "<div><b>Cluster options</b><table>"
            "<tr><th>Option</th><th>Value</th><th>Allowed</th></tr>"
            f"{rows}</table></div>"
        )

    def _widget(self) -> Any:
        """An ipywidgets form bound to these options, or None without ipywidgets."""
        if "_cached_widget" not in self.__dict__:
            from .widgets import options_form

            object.__setattr__(self, "_cached_widget", options_form(self._fields.values()))
        return self.__dict__["_cached_widget"]

    def _ipython_display_(self, **kwargs: Any) -> None:
        from IPython.display import display

        widget = self._widget()
        if widget is not None:
            display(widget, **kwargs)
        else:
            display({"text/plain": repr(self), "text/html": self._repr_html_()}, raw=True)
