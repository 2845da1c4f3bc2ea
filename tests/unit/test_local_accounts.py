"""Which OS identity a hub user's local clusters get: mapped accounts and allocated uids."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from traitlets import TraitError

from jhub_gateway.hub_service.backends.local import accounts
from jhub_gateway.hub_service.backends.local.accounts import Identity
from jhub_gateway.hub_service.backends.local.config import LocalBackendConfig
from jhub_gateway.hub_service.backends.local.store import ClusterStore, StoreError
from jhub_gateway.hub_service.errors import InvalidOptions
from jhub_gateway.models import User

NOBODY = pwd.getpwnam("nobody")


# -- os_user: template or callable ---------------------------------------------


def test_a_template_maps_the_hub_user_to_an_account_name():
    assert accounts.account_name("jupyter-{username}", User("alice")) == "jupyter-alice"
    assert accounts.account_name("", User("alice")) == ""  # none mapped: allocate a uid


def test_a_callable_sees_the_hub_user_and_may_decline():
    def by_group(user):
        return f"staff-{user.name}" if "staff" in user.groups else None

    assert (
        accounts.account_name(by_group, User("alice", groups=frozenset({"staff"}))) == "staff-alice"
    )
    assert accounts.account_name(by_group, User("bob")) == ""


def test_a_callable_returning_a_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="returned int, not a str"):
        accounts.account_name(lambda user: 1001, User("alice"))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("jupyter-{user}", "only {username} may be used"),
        ("jupyter-{0}", "only {username} may be used"),
        ("jupyter-{username", "not a valid template"),
        ("{username!z}", "not a valid template"),
    ],
)
def test_bad_templates_are_refused_when_configured(template, message):
    with pytest.raises(ValueError, match="not a valid template") as info:
        accounts.check_template(template)
    assert message in str(info.value) and repr(template) in str(info.value)
    with pytest.raises(TraitError, match="LocalBackend.os_user"):
        LocalBackendConfig(os_user=template)


def test_a_template_formatting_to_nothing_is_refused():
    with pytest.raises(ValueError, match="must not format to an empty name"):
        accounts.check_template("")  # only checked when set, but the rule holds
    assert LocalBackendConfig(os_user="jupyter-{username}").os_user == "jupyter-{username}"
    func = LocalBackendConfig(os_user=lambda user: None).os_user
    assert callable(func)


# -- mapped accounts --------------------------------------------------------------


def test_an_existing_account_gives_its_uid_gid_and_home():
    identity = accounts.account_identity("nobody", "alice", service_uid=0)
    assert identity == Identity(NOBODY.pw_uid, NOBODY.pw_gid, "nobody", NOBODY.pw_dir)
    assert Identity.from_dict(identity.to_dict()) == identity
    assert Identity.from_dict(None) is None and Identity.from_dict({}) is None


def test_a_missing_account_is_a_422_naming_it():
    with pytest.raises(InvalidOptions) as info:
        accounts.account_identity("jupyter-no-such-user-x9", "alice", service_uid=0)
    assert info.value.status == 422 and info.value.reason == "no_os_account"
    assert "'jupyter-no-such-user-x9'" in info.value.message and "'alice'" in info.value.message


@pytest.mark.parametrize(("account", "service_uid"), [("root", 12345), ("nobody", NOBODY.pw_uid)])
def test_root_or_the_service_account_is_refused(account, service_uid):
    with pytest.raises(InvalidOptions) as info:
        accounts.account_identity(account, "alice", service_uid=service_uid)
    assert info.value.reason == "privileged_os_account"
    assert f"uid {pwd.getpwnam(account).pw_uid}" in info.value.message


# -- allocated uids ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [(999, 2000), (5000, 4999), (1000, 2**31 - 1), (-5, 10)])
def test_uid_ranges_must_be_unprivileged_and_ordered(bad):
    with pytest.raises(ValueError, match="must satisfy 1000 <= low <= high"):
        accounts.check_uid_range(*bad)
    with pytest.raises(TraitError, match="uid_range"):
        LocalBackendConfig(uid_range=bad)


def test_uids_of_os_accounts_are_not_allocatable():
    assert not accounts.allocatable(0) and not accounts.allocatable(NOBODY.pw_uid)
    free = next(u for u in range(250000, 260000) if u not in {e.pw_uid for e in pwd.getpwall()})
    assert accounts.allocatable(free)


async def test_allocated_uids_are_per_user_skip_unusable_and_persist(tmp_path: Path):
    path, key = tmp_path / "clusters.sqlite", Fernet.generate_key()
    store = await ClusterStore.open(path, [key])
    try:
        alice = await store.user_uid("alice", 300000, 300003, lambda uid: uid != 300001)
        bob = await store.user_uid("bob", 300000, 300003, lambda uid: uid != 300001)
        assert (alice, bob) == (300000, 300002)  # 300001 belongs to someone: skipped
        assert await store.user_uid("alice", 300000, 300003, lambda uid: True) == alice
    finally:
        await store.close()
    store = await ClusterStore.open(path, [key])  # a service restart
    try:
        assert await store.user_uid("bob", 300000, 300003, lambda uid: True) == bob
        assert await store.user_uid("carol", 300000, 300003, lambda uid: True) == 300001
        assert await store.user_uid("dave", 300000, 300003, lambda uid: True) == 300003
        with pytest.raises(
            StoreError, match=r"no free uid left in LocalBackend.uid_range \(300000, 300003\)"
        ):
            await store.user_uid("erin", 300000, 300003, lambda uid: True)
    finally:
        await store.close()
    assert os.stat(path).st_size > 0
