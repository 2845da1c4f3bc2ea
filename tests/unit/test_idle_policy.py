"""IdlePolicy: the operator's bound on idle timeouts, and what a heartbeat may claim."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jhub_gateway.hub_service.errors import InvalidOptions
from jhub_gateway.hub_service.handlers.clusters import parse_heartbeat
from jhub_gateway.hub_service.idle import IdlePolicy
from jhub_gateway.models import User


def policy(**traits) -> IdlePolicy:
    config = Config()
    for key, value in traits.items():
        setattr(config.IdlePolicy, key, value)
    return IdlePolicy(config=config)


ALICE = User("alice")
LONG = User("lena", groups=frozenset({"long-jobs", "other"}))


def test_without_bounds_the_cluster_setting_applies():
    p = policy()
    assert p.timeout_for(1800, ALICE) == 1800
    assert p.timeout_for(0, ALICE) == 0


def test_the_bound_caps_long_and_never_timeouts():
    p = policy(max_idle_timeout=600)
    assert p.timeout_for(1800, ALICE) == 600
    assert p.timeout_for(0, ALICE) == 600  # "never" is not allowed past the bound
    assert p.timeout_for(60, ALICE) == 60


def test_groups_get_the_longest_of_their_bounds():
    p = policy(max_idle_timeout=600, group_max_idle_timeout={"long-jobs": 14400, "other": 900})
    assert p.bound_for(LONG) == 14400
    assert p.bound_for(ALICE) == 600
    assert (
        policy(max_idle_timeout=600, group_max_idle_timeout={"other": None}).bound_for(LONG) is None
    )


def test_stop_message_only_past_the_timeout():
    p = policy()
    assert p.stop_message({"idle_seconds": 10}, 30, ALICE) is None
    assert p.stop_message({"idle_seconds": 30}, 30, ALICE) == "no work for 30 s (idle timeout 30 s)"
    assert p.stop_message({}, 30, ALICE) is None  # an older runtime reports nothing
    assert p.stop_message({"idle_seconds": 10**6}, 0, ALICE) is None


@pytest.mark.parametrize("idle", ["forever", -1, float("nan"), float("inf"), True, [1]])
def test_a_heartbeat_claiming_nonsense_idle_time_is_refused(idle):
    with pytest.raises(InvalidOptions, match="idle_seconds"):
        parse_heartbeat({"count": 0, "idle_seconds": idle})


def test_a_heartbeat_keeps_a_valid_idle_report():
    assert parse_heartbeat({"count": 1, "idle_seconds": 2.5})["idle_seconds"] == 2.5


def test_bad_group_bounds_fail_at_start():
    with pytest.raises(TraitError, match=r"group_max_idle_timeout\['g'\]"):
        policy(group_max_idle_timeout={"g": "long"})


def test_heartbeat_adaptive_bounds_are_checked():
    assert parse_heartbeat({"count": 0})  # older runtimes send none: nothing to record
    assert "adaptive" not in parse_heartbeat({"count": 0})
    assert parse_heartbeat({"count": 0, "adaptive": None})["adaptive"] is None
    bounds = {"minimum": 1, "maximum": None}
    assert parse_heartbeat({"count": 0, "adaptive": bounds})["adaptive"] == bounds
    for bad in ({"minimum": -1}, {"minimum": True}, {"maximum": "9"}, {"spam": 1}, [1, 2]):
        with pytest.raises(InvalidOptions, match="heartbeat adaptive"):
            parse_heartbeat({"count": 0, "adaptive": bad})
