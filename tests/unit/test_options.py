"""Cluster options DSL: fields, wire specification, validation messages, handlers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from jhub_gateway.models import User
from jhub_gateway.options import (
    Bool,
    Float,
    Integer,
    Mapping,
    Options,
    OptionsError,
    Select,
    String,
    resolve_options,
)

ALICE = User("alice", groups=frozenset({"staff"}))


def full_options(**kwargs: Any) -> Options:
    return Options(
        String("image", default="daskdev/dask", label="Image"),
        Bool("gpu", label="GPU"),
        Integer("worker_cores", default=1, min=1, max=8, label="Cores"),
        Float("worker_memory", default=2, min=0.5, max=16, target="memory_gb"),
        Select("profile", ["small", ("large", {"cores": 4, "memory": "16G"})]),
        Mapping("environment", default={"A": "1"}),
        **kwargs,
    )


def test_specification_matches_upstream_wire_format() -> None:
    assert full_options().get_specification() == [
        {"field": "image", "label": "Image", "default": "daskdev/dask", "spec": {"type": "string"}},
        {"field": "gpu", "label": "GPU", "default": False, "spec": {"type": "bool"}},
        {
            "field": "worker_cores",
            "label": "Cores",
            "default": 1,
            "spec": {"type": "int", "min": 1, "max": 8},
        },
        {
            "field": "worker_memory",
            "label": "worker_memory",
            "default": 2.0,
            "spec": {"type": "float", "min": 0.5, "max": 16.0},
        },
        {
            "field": "profile",
            "label": "profile",
            "default": "small",
            "spec": {"type": "select", "options": ["small", "large"]},
        },
        {
            "field": "environment",
            "label": "environment",
            "default": {"A": "1"},
            "spec": {"type": "mapping"},
        },
    ]


def test_unbounded_numbers_have_null_bounds() -> None:
    spec = Options(Integer("n"), Float("x")).get_specification()
    assert spec[0]["spec"] == {"type": "int", "min": None, "max": None}
    assert spec[0]["default"] == 0 and spec[1]["default"] == 0.0


def test_parse_fills_defaults() -> None:
    parsed = full_options().parse({})
    assert parsed == {
        "image": "daskdev/dask",
        "gpu": False,
        "worker_cores": 1,
        "worker_memory": 2.0,
        "profile": "small",
        "environment": {"A": "1"},
    }
    assert full_options().parse(None) == parsed


def test_parse_accepts_valid_values() -> None:
    parsed = full_options().parse(
        {"gpu": True, "worker_cores": 8, "worker_memory": 1, "profile": "large", "environment": {}}
    )
    assert parsed["gpu"] is True and parsed["worker_cores"] == 8
    assert parsed["worker_memory"] == 1.0 and isinstance(parsed["worker_memory"], float)
    assert parsed["profile"] == "large" and parsed["environment"] == {}


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"image": 3}, "option 'image' must be a string, got 3 (int)"),
        ({"gpu": "yes"}, "option 'gpu' must be a boolean, got 'yes' (str)"),
        ({"gpu": 1}, "option 'gpu' must be a boolean, got 1 (int)"),
        ({"worker_cores": True}, "option 'worker_cores' must be an integer, got True (bool)"),
        ({"worker_cores": 2.0}, "option 'worker_cores' must be an integer, got 2.0 (float)"),
        ({"worker_cores": "2"}, "option 'worker_cores' must be an integer, got '2' (str)"),
        ({"worker_cores": 0}, "option 'worker_cores' must be >= 1, got 0"),
        ({"worker_cores": 9}, "option 'worker_cores' must be <= 8, got 9"),
        ({"worker_memory": 0.25}, "option 'worker_memory' must be >= 0.5, got 0.25"),
        ({"worker_memory": 17}, "option 'worker_memory' must be <= 16.0, got 17.0"),
        ({"worker_memory": False}, "option 'worker_memory' must be a number, got False (bool)"),
        ({"worker_memory": math.nan}, "option 'worker_memory' must be a finite number"),
        ({"profile": "huge"}, "option 'profile' must be one of 'small', 'large', got 'huge'"),
        ({"profile": ["small"]}, "option 'profile' must be one of 'small', 'large', got ['small']"),
        ({"environment": [1]}, "option 'environment' must be a mapping, got [1] (list)"),
        (
            {"cores": 2, "zz": 1},
            "unknown cluster options: 'cores', 'zz'; valid options are: 'image', 'gpu', "
            "'worker_cores', 'worker_memory', 'profile', 'environment'",
        ),
        (["worker_cores"], "cluster options must be an object mapping option names to values"),
    ],
)
def test_parse_rejects_bad_input_precisely(request_: Any, message: str) -> None:
    with pytest.raises(OptionsError) as info:
        full_options().parse(request_)
    assert str(info.value).startswith(message)


def test_no_options_configured() -> None:
    with pytest.raises(OptionsError, match="this gateway takes no options"):
        Options().parse({"x": 1})
    assert Options().parse({}) == {}
    assert Options().get_specification() == []


def test_mapping_default_is_copied_per_cluster() -> None:
    opts = full_options()
    first = opts.parse({})
    first["environment"]["B"] = "2"
    assert opts.parse({})["environment"] == {"A": "1"}
    supplied = {"X": {"nested": 1}}
    parsed = opts.parse({"environment": supplied})
    parsed["environment"]["X"]["nested"] = 2
    assert supplied["X"]["nested"] == 1


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: Integer("n", min=1), "invalid default for option 'n'"),
        (lambda: Integer("n", min=5, max=1), "min (5) is greater than max (1)"),
        (lambda: Integer("n", min=1.5), "min must be an integer"),
        (lambda: Float("x", default="1"), "invalid default for option 'x'"),
        (lambda: Select("s", []), "at least one choice"),
        (lambda: Select("s", ["a", "a"]), "duplicate choice 'a'"),
        (lambda: Select("s", [1]), "choice keys must be strings"),
        (lambda: Select("s", [("a", 1, 2)]), "(key, value) pairs"),
        (lambda: Select("s", ["a"], default="b"), "invalid default for option 's'"),
        (lambda: Options(String("a"), Bool("a")), "duplicate option field 'a'"),
        (lambda: String(""), "non-empty string"),
        (lambda: Options(String("a"), handler=lambda: {}), "must take (options)"),
    ],
)
def test_configuration_errors_fail_early(make: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert fragment in str(info.value)
    # Admin mistakes must not surface as user-facing 422s.
    assert not isinstance(info.value, OptionsError)


def test_options_rejects_non_fields() -> None:
    with pytest.raises(TypeError, match="Field instances"):
        Options("cores")  # type: ignore[arg-type]


async def test_default_configuration_uses_targets_and_transforms() -> None:
    opts = full_options()
    config = await opts.get_configuration(opts.parse({"profile": "large"}), ALICE)
    assert config["memory_gb"] == 2.0 and "worker_memory" not in config
    assert config["profile"] == {"cores": 4, "memory": "16G"}
    assert config["image"] == "daskdev/dask"


async def test_handler_with_options_only() -> None:
    seen: list[Any] = []

    def handler(options):
        seen.append(options)
        return {"worker_cores": options.worker_cores * 2, "mem": options["memory_gb"]}

    opts = full_options(handler=handler)
    config = await opts.get_configuration(opts.parse({"worker_cores": 3}), ALICE)
    assert config == {"worker_cores": 6, "mem": 2.0}
    with pytest.raises(AttributeError, match="read-only"):
        seen[0].worker_cores = 1
    with pytest.raises(AttributeError):
        _ = seen[0].missing
    assert "profile" in dir(seen[0])


async def test_async_handler_with_user() -> None:
    async def handler(options, user):
        return {"cores": options.worker_cores, "owner": user.name, "staff": "staff" in user.groups}

    opts = Options(Integer("worker_cores", default=2), handler=handler)
    config = await opts.get_configuration(opts.parse({}), ALICE)
    assert config == {"cores": 2, "owner": "alice", "staff": True}


async def test_handler_cannot_mutate_what_it_was_given() -> None:
    def handler(options):
        options["environment"]["B"] = "2"
        return dict(options)

    opts = Options(Mapping("environment", default={"A": "1"}), handler=handler)
    parsed = opts.parse({})
    await opts.get_configuration(parsed, ALICE)
    assert parsed["environment"] == {"A": "1"}


async def test_handler_errors_become_options_errors() -> None:
    def handler(options, user):
        if options.worker_cores > 2 and user.name == "alice":
            raise ValueError("alice may use at most 2 cores")
        return {}

    opts = Options(Integer("worker_cores", default=1), handler=handler)
    with pytest.raises(OptionsError, match="alice may use at most 2 cores"):
        await opts.get_configuration(opts.parse({"worker_cores": 4}), ALICE)

    bad = Options(handler=lambda options: ["not", "a", "dict"])
    with pytest.raises(OptionsError, match="returned list, expected a mapping"):
        await bad.get_configuration({}, ALICE)


async def test_resolve_options_from_instance_and_callables() -> None:
    fixed = full_options()
    assert await resolve_options(fixed, ALICE) is fixed

    def per_group(user):
        return fixed if "staff" in user.groups else Options()

    assert await resolve_options(per_group, ALICE) is fixed
    assert (await resolve_options(per_group, User("bob"))).fields == ()

    async def async_per_user(user):
        return Options(Integer("n", max=len(user.name)))

    resolved = await resolve_options(async_per_user, ALICE)
    assert resolved.get_specification()[0]["spec"]["max"] == 5

    with pytest.raises(TypeError, match="expected an Options instance"):
        await resolve_options(lambda user: {"n": 1}, ALICE)
    with pytest.raises(TypeError, match="callable"):
        await resolve_options(42, ALICE)  # type: ignore[arg-type]
