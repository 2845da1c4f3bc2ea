from __future__ import annotations

import copy

import pytest

from jhub_gateway.client import Options
from tests.client.client_fakes import OPTIONS_SPEC


@pytest.fixture
def opts() -> Options:
    return Options._from_spec(copy.deepcopy(OPTIONS_SPEC))


def test_spec_defaults_and_access(opts):
    assert dict(opts) == {
        "worker_cores": 1,
        "worker_memory": 2.0,
        "image": "daskdev/dask",
        "profile": "small",
        "environment": {},
        "debug": False,
    }
    opts.worker_cores = 3
    opts["profile"] = "large"
    opts.worker_memory = 4  # ints are accepted for floats
    assert (opts["worker_cores"], opts.profile, opts.worker_memory) == (3, "large", 4.0)
    assert isinstance(opts.worker_memory, float)
    assert "worker_cores" in dir(opts)
    assert len(opts) == 6


@pytest.mark.parametrize(
    ("key", "value", "exc"),
    [
        ("worker_cores", 0, ValueError),
        ("worker_cores", 5, ValueError),
        ("worker_cores", 1.5, TypeError),
        ("worker_cores", True, TypeError),
        ("worker_memory", 9.0, ValueError),
        ("worker_memory", "big", TypeError),
        ("image", 3, TypeError),
        ("profile", "huge", ValueError),
        ("profile", 1, TypeError),
        ("environment", [1], TypeError),
        ("debug", 1, TypeError),
    ],
)
def test_invalid_values_are_rejected(opts, key, value, exc):
    before = opts[key]
    with pytest.raises(exc):
        opts[key] = value
    assert opts[key] == before


def test_unknown_names_and_deletion(opts):
    with pytest.raises(KeyError):
        opts["nope"] = 1
    with pytest.raises(AttributeError, match="No option 'nope'"):
        opts.nope = 1
    with pytest.raises(AttributeError):
        _ = opts.nope
    with pytest.raises(TypeError):
        del opts["image"]


def test_mapping_values_are_copied(opts):
    env = {"A": "1"}
    opts.environment = env
    env["B"] = "2"
    assert opts.environment == {"A": "1"}


def test_unknown_field_type_passes_through_and_select_defaults_to_first():
    opts = Options._from_spec(
        [
            {"field": "future", "label": None, "default": [1, 2], "spec": {"type": "list"}},
            {"field": "p", "label": "P", "default": None, "spec": {"type": "select", "options": ["a", "b"]}},
        ]
    )  # fmt: skip
    assert opts.future == [1, 2] and opts.p == "a"
    opts.future = "anything"
    assert opts.future == "anything"


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="at least one"):
        Options._from_spec(
            [{"field": "p", "default": "a", "spec": {"type": "select", "options": []}}]
        )
    with pytest.raises(ValueError):
        Options._from_spec([{"field": "n", "default": 0, "spec": {"type": "int", "min": 1}}])


def test_repr_and_html(opts):
    assert repr(opts).startswith("Options<worker_cores=1,")
    html = opts._repr_html_()
    assert "Worker cores" in html and "1 &lt;= int &lt;= 4" in html
    assert "one of small, large" in html
    opts.image = "<script>"
    assert "<script>" not in opts._repr_html_()
    # Without ipywidgets installed, there is no widget and display falls back to HTML.
    assert opts._widget() is None
    assert copy.deepcopy(opts) == opts
