"""ServerWatch's decisions, without a hub: grace periods, restarts, services, paging."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jhub_gateway.hub_service.auth.base import Authenticator
from jhub_gateway.hub_service.auth.simple import SimpleAuthenticator
from jhub_gateway.hub_service.server_watch import HubUnavailable, ServerWatch, start_server_watch
from tests.polling import until


def watch(grace: float = 10.0) -> ServerWatch:
    config = Config()
    config.ServerWatch.grace_period = grace
    return ServerWatch(config=config)


def test_owners_stop_only_after_the_grace_period():
    w = watch(grace=10)
    assert w.owners_to_stop({"alice", "bob"}, {"bob"}, now=100) == set()
    assert w.owners_to_stop({"alice", "bob"}, {"bob"}, now=109.9) == set()
    assert w.owners_to_stop({"alice", "bob"}, {"bob"}, now=110) == {"alice"}


def test_a_server_back_within_the_grace_resets_the_clock():
    w = watch(grace=10)
    w.owners_to_stop({"alice"}, set(), now=0)
    w.owners_to_stop({"alice"}, {"alice"}, now=5)  # restarted
    assert w.owners_to_stop({"alice"}, set(), now=12) == set()
    assert w.owners_to_stop({"alice"}, set(), now=22) == {"alice"}


def test_services_and_other_kinds_are_never_stopped():
    w = watch(grace=0)
    assert w.owners_to_stop({"service:robot", "user:a:b", "carol"}, set(), now=0) == {"carol"}


def test_owners_without_clusters_are_forgotten():
    w = watch(grace=10)
    w.owners_to_stop({"alice"}, set(), now=0)
    w.owners_to_stop(set(), set(), now=5)  # alice's clusters went away meanwhile
    # a new cluster of alice starts a new grace period
    assert w.owners_to_stop({"alice"}, set(), now=12) == set()


def test_missing_scopes():
    w = watch()
    assert w.missing_scopes({"list:users", "read:servers", "self"}) == []
    assert w.missing_scopes({"list:users!group=a", "read:servers"}) == ["list:users"]
    assert w.missing_scopes({"admin:users", "admin:servers"}) == []


async def test_active_users_follows_pages():
    pages = {
        0: {"items": [{"name": "a"}, {"name": "b"}], "_pagination": {"next": {"offset": 2}}},
        2: {"items": [{"name": "c"}], "_pagination": {"next": None}},
    }
    asked = []

    async def hub_get(path: str):
        offset = int(path.split("offset=")[1].split("&")[0])
        asked.append(path)
        return pages[offset]

    assert await watch().active_users(hub_get) == {"a", "b", "c"}
    assert all("state=active" in p for p in asked) and len(asked) == 2


async def test_an_odd_hub_answer_is_unavailable_not_empty():
    async def hub_get(path: str):
        return {"unexpected": True}

    # an empty set would stop everyone's clusters: the shape error must surface
    with pytest.raises(HubUnavailable):
        await watch().active_users(hub_get)


@pytest.mark.parametrize("trait,value", [("grace_period", -1), ("interval", 0.5)])
def test_bad_config_is_refused(trait, value):
    config = Config()
    setattr(config.ServerWatch, trait, value)
    with pytest.raises(TraitError, match=f"ServerWatch.{trait}"):
        ServerWatch(config=config)


class FakeHub:
    def __init__(self, scopes: set[str], active: list[str]) -> None:
        self.scopes = scopes
        self.active = active
        self.asked: list[str] = []

    async def hub_get(self, path: str):
        self.asked.append(path)
        return {"items": [{"name": n} for n in self.active], "_pagination": {"next": None}}

    async def own_scopes(self) -> set[str]:
        return self.scopes


class HubAuth(Authenticator):
    def __init__(self, hub: FakeHub) -> None:
        super().__init__()
        self.hub = hub

    def hub_api(self) -> FakeHub:
        return self.hub


class FakeClusters:
    def __init__(self) -> None:
        self.stopped: list[tuple[str, str]] = []

    def owners_bound_to_servers(self, allow_opt_out: bool) -> set[str]:
        return {"alice", "bob"}

    async def stop_for_server_gone(self, username: str, message: str, allow_opt_out: bool) -> int:
        self.stopped.append((username, message))
        return 1


async def test_the_watch_needs_an_authenticator_that_offers_the_hub(caplog):
    caplog.set_level("INFO")
    assert SimpleAuthenticator().hub_api() is None
    assert await start_server_watch(watch(), SimpleAuthenticator(), FakeClusters()) is None
    assert "server watch off" in caplog.text


async def test_the_watch_refuses_to_start_without_its_scopes(caplog):
    hub = FakeHub({"list:users"}, [])
    assert await start_server_watch(watch(), HubAuth(hub), FakeClusters()) is None
    assert "lacks read:servers" in caplog.text
    assert hub.asked == []


async def test_the_watch_asks_the_authenticators_hub_and_stops_the_absent():
    hub = FakeHub({"list:users", "read:servers"}, ["bob"])
    clusters = FakeClusters()
    loop = await start_server_watch(watch(grace=0), HubAuth(hub), clusters)
    assert loop is not None
    try:
        await until(lambda: clusters.stopped, what="alice's clusters stopped")
    finally:
        await loop.stop()
    assert [name for name, _ in clusters.stopped] == ["alice"]
    assert hub.asked[0].startswith("/users?state=active")
