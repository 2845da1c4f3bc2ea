"""ClusterStore and key handling against real SQLite files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from jhub_gateway.hub_service.backends.local.store import (
    KEY_FILE_NAME,
    ClusterStore,
    StoreKeyError,
    StoreSchemaError,
    load_or_create_keys,
)
from jhub_gateway.models import Cluster, ClusterStatus, now_ms

TOKEN = "tok-3f9a1c77e2b84d0c"
TLS_KEY = "-----BEGIN PRIVATE KEY-----\nsecretkeymaterial9d8e7f\n-----END PRIVATE KEY-----\n"


def make_cluster(name: str = "c1", **kw) -> Cluster:
    c = Cluster(
        name=name,
        username="alice",
        options={"worker_cores": 2, "image": "x"},
        config={"idle_timeout": 60.5},
        token=TOKEN,
        tls_cert="-----BEGIN CERTIFICATE-----\npublic\n-----END CERTIFICATE-----\n",
        tls_key=TLS_KEY,
        scheduler_address="tls://127.0.0.1:4321",
        dashboard_address="http://127.0.0.1:8787",
        api_address="http://127.0.0.1:9999",
        target_workers=3,
        active_workers=1,
        **kw,
    )
    c.record("created", "Created", "by test")
    return c


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "clusters.sqlite"


@pytest.fixture
def key() -> bytes:
    return Fernet.generate_key()


async def test_round_trip_and_reopen(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    cluster = make_cluster()
    cluster.transition(ClusterStatus.RUNNING, "SchedulerReady", "ok")
    state = {"scheduler": {"pid": 123, "create_time": 1.5}, "workers": {"w1": {"pid": 9}}}
    await store.save(cluster, state)
    got = await store.get("c1")
    assert got == (cluster, state)
    assert await store.get("nope") is None
    await store.close()

    store = await ClusterStore.open(db_path, [key])
    try:
        assert await store.get("c1") == (cluster, state)
        assert await store.load_active() == [(cluster, state)]
    finally:
        await store.close()
    assert os.stat(db_path).st_mode & 0o777 == 0o600


async def test_secrets_encrypted_at_rest(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    await store.save(make_cluster(), {})
    await store.close()
    raw = b"".join(p.read_bytes() for p in db_path.parent.iterdir())
    assert b"tls://127.0.0.1:4321" in raw  # sanity: the data is in these bytes
    assert TOKEN.encode() not in raw
    assert b"secretkeymaterial9d8e7f" not in raw
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_load_active_purge_delete(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    try:
        pending, running, stopping = make_cluster("p"), make_cluster("r"), make_cluster("s")
        running.transition(ClusterStatus.RUNNING, "Ready")
        stopping.transition(ClusterStatus.STOPPING, "UserRequested")
        old, recent = make_cluster("old"), make_cluster("recent")
        old.transition(ClusterStatus.FAILED, "StartTimeout")
        old.stop_time = now_ms() - 3_600_000
        recent.transition(ClusterStatus.STOPPED, "UserRequested")
        for c in (pending, running, stopping, old, recent):
            await store.save(c, {"n": c.name})
        active = await store.load_active()
        assert sorted(c.name for c, _ in active) == ["p", "r", "s"]
        assert all(s == {"n": c.name} for c, s in active)

        assert await store.purge_terminal(older_than_ms=600_000) == 1
        assert await store.get("old") is None
        assert await store.get("recent") is not None
        assert await store.purge_terminal(older_than_ms=600_000) == 0

        await store.delete("p")
        await store.delete("p")  # idempotent
        assert await store.get("p") is None
    finally:
        await store.close()


async def test_concurrent_saves(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    try:
        clusters = [make_cluster(f"c{i}") for i in range(40)]
        await asyncio.gather(*(store.save(c, {"i": i}) for i, c in enumerate(clusters)))
        # and many updates of the same row racing each other
        c0 = clusters[0]

        async def bump(n: int) -> None:
            c0.target_workers = n
            await store.save(c0, {"i": n})

        await asyncio.gather(*(bump(n) for n in range(20)))
        assert len(await store.load_active()) == 40
        got, state = await store.get("c0")  # type: ignore[misc]
        assert got.target_workers == 19 and state == {"i": 19}
    finally:
        await store.close()


async def test_wrong_key_is_clear(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    await store.save(make_cluster(), {})
    await store.close()
    with pytest.raises(StoreKeyError) as err:
        await ClusterStore.open(db_path, [Fernet.generate_key()])
    assert "encryption key" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert key.decode() not in str(err.value)


async def test_key_rotation(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    await store.save(make_cluster(), {})
    await store.close()

    new = Fernet.generate_key()
    store = await ClusterStore.open(db_path, [new, key])  # new first, old still decrypts
    try:
        got = await store.get("c1")
        assert got is not None and got[0].token == TOKEN
        assert await store.rotate() == 1
    finally:
        await store.close()

    store = await ClusterStore.open(db_path, [new])  # old key dropped after rotate()
    try:
        got = await store.get("c1")
        assert got is not None and got[0].tls_key == TLS_KEY
    finally:
        await store.close()


async def test_newer_schema_refused(db_path: Path, key: bytes) -> None:
    store = await ClusterStore.open(db_path, [key])
    await store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StoreSchemaError, match="schema version 99"):
        await ClusterStore.open(db_path, [key])


def test_keys_from_env_value(tmp_path: Path) -> None:
    k1, k2 = Fernet.generate_key(), Fernet.generate_key()
    assert load_or_create_keys(tmp_path, f" {k1.decode()} ;{k2.decode()};") == [k1, k2]
    assert not (tmp_path / KEY_FILE_NAME).exists()
    with pytest.raises(ValueError, match=r"key #2 .*not a valid Fernet key.*generate_key"):
        load_or_create_keys(tmp_path, f"{k1.decode()};c2hvcnQ=")
    with pytest.raises(ValueError, match="not a valid Fernet key"):
        load_or_create_keys(tmp_path, "not base64 at all!!")


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys = load_or_create_keys(data_dir, None)
    path = data_dir / KEY_FILE_NAME
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(keys) == 1 and Fernet(keys[0])
    assert load_or_create_keys(data_dir, "") == keys  # blank value means "not set"

    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_keys(data_dir, None)
