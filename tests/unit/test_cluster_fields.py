"""One definition of a cluster's settings: the core table, and everything that reads it.

The service's ClusterConfig is built from ``jhub_gateway.cluster_fields``; the
CRD's ``spec.config`` keys and the controller's ClusterSpec defaults are still
written out by hand, so these tests hold them to the table until they read it too.
"""

from __future__ import annotations

import dataclasses

import pytest
from traitlets import TraitError

from jhub_gateway import crd
from jhub_gateway.cluster_fields import FIELDS, field
from jhub_gateway.controller.builders.spec import ClusterSpec
from jhub_gateway.hub_service.backends.kube.config import KubeClusterConfig
from jhub_gateway.hub_service.cluster_config import ClusterConfig, parse_memory


def _as_stored(value):
    return list(value) if isinstance(value, tuple) else value


def test_cluster_config_has_exactly_the_core_fields_with_their_defaults_and_help():
    traits = ClusterConfig.class_traits(config=True)
    assert set(traits) == {f.name for f in FIELDS}
    for f in FIELDS:
        trait = traits[f.name]
        assert _as_stored(trait.default()) == _as_stored(f.default), f.name
        assert trait.help == f.help, f.name
        assert trait.allow_none is f.optional, f.name


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("worker_cores", 0),
        ("worker_threads", -1),
        ("idle_timeout", -1),
        ("scheduler_start_timeout", 0.5),
        ("adaptive_period", 0),
        ("cluster_max_workers", -1),
        ("worker_memory", "lots"),
    ],
)
def test_the_kind_decides_the_bounds(name, bad):
    with pytest.raises(TraitError, match=name):
        ClusterConfig(**{name: bad})


def test_every_stored_field_has_its_crd_key_and_schema():
    properties = crd.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]["properties"]["config"]["properties"]
    for f in FIELDS:
        if f.key is None:
            assert f.name not in crd.CONFIG_FIELDS.values()
            continue
        assert crd.CONFIG_FIELDS[f.key] == f.name
        assert f.key in properties, f.key


def test_the_kubernetes_only_keys_are_exactly_the_kube_backends_own_settings():
    from jhub_gateway.hub_service.backends.kube.config import KubeClusterConfig

    kube_traits = set(KubeClusterConfig.class_traits(config=True))
    shared = {f.name for f in FIELDS}
    # namespace says where a cluster lives; it is the object's, not a spec.config key
    assert set(crd.KUBE_CONFIG_FIELDS.values()) == kube_traits - shared - {"namespace"}
    assert not set(crd.KUBE_CONFIG_FIELDS) & {f.key for f in FIELDS}


def test_the_controller_defaults_agree_with_the_core():
    defaults = {}
    for f in dataclasses.fields(ClusterSpec):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    shared = [f for f in FIELDS if f.name in defaults]
    assert {f.name for f in shared} >= {"worker_cores", "worker_memory", "scheduler_memory"}
    for f in shared:
        assert _as_stored(defaults[f.name]) == _as_stored(f.default), f.name


def test_the_kubernetes_config_keeps_the_core_defaults_of_what_it_inherits():
    config, base = KubeClusterConfig(), ClusterConfig()
    for f in FIELDS:
        value = getattr(config, f.name)
        expected = getattr(base, f.name)
        if f.kind == "memory" and value is not None:
            value, expected = parse_memory(value), parse_memory(expected)
        assert _as_stored(value) == _as_stored(expected), f.name


def test_unknown_fields_are_named():
    with pytest.raises(KeyError, match="no cluster field 'worker_gpus'"):
        field("worker_gpus")
