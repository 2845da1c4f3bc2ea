"""Persistent cluster state for the local backend: SQLite, secrets encrypted at rest.

The store is what lets the service restart without losing running clusters: each
cluster row holds the full ``Cluster`` plus a backend-private ``state`` JSON (pids,
worker records) so a new service process can re-adopt what the old one started.

Secrets (``Cluster.token``, ``Cluster.tls_key``) live only in one Fernet-encrypted
column. ``MultiFernet`` encrypts with the first key and decrypts with any, so an
operator rotates keys by prepending a new one (and may call ``rotate()`` to
re-encrypt every row with it before dropping the old key).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import aiosqlite
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from jhub_gateway.models import Cluster, ClusterEvent, ClusterStatus, now_ms

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
KEY_FILE_NAME = "encryption.key"
GENERATE_HINT = (
    "generate one with: python -c "
    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
# Encrypted marker written once per store, so a wrong key is caught at open()
# rather than on the first cluster read deep inside a request.
_KEY_CHECK_PLAINTEXT = b"jhub-gateway-store"
_TERMINAL = tuple(s.name for s in ClusterStatus if s.is_terminal)

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    options TEXT NOT NULL,
    config TEXT NOT NULL,
    tls_cert TEXT NOT NULL,
    scheduler_address TEXT NOT NULL,
    dashboard_address TEXT NOT NULL,
    api_address TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    stop_time INTEGER,
    target_workers INTEGER NOT NULL,
    active_workers INTEGER NOT NULL,
    events TEXT NOT NULL,
    state TEXT NOT NULL,
    secrets BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS clusters_status ON clusters (status);
"""

# v2: the uid each hub user's isolated clusters run under, stable across restarts
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS user_uids (
    username TEXT PRIMARY KEY,
    uid INTEGER NOT NULL UNIQUE
);
"""

_COLUMNS = (
    "name, username, status, reason, message, options, config, tls_cert, "
    "scheduler_address, dashboard_address, api_address, start_time, stop_time, "
    "target_workers, active_workers, events, state, secrets"
)


class StoreError(Exception):
    """The store cannot be used as configured; the message says why and what to do."""


class StoreKeyError(StoreError):
    """The configured encryption keys cannot decrypt the store's secrets."""


class StoreSchemaError(StoreError):
    """The store file was written by an incompatible (newer) version."""


def _parse_keys(value: str, source: str) -> list[bytes]:
    keys = []
    for i, part in enumerate(p.strip() for p in value.split(";")):
        if not part:
            continue
        raw = part.encode("ascii", errors="replace")
        try:
            decoded = base64.urlsafe_b64decode(raw)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            # Never echo the value: it may be a real key with a typo.
            raise ValueError(
                f"encryption key #{i + 1} from {source} is not a valid Fernet key "
                f"(expected 32 url-safe base64-encoded bytes); {GENERATE_HINT}"
            )
        keys.append(raw)
    if not keys:
        raise ValueError(f"no encryption keys found in {source}; {GENERATE_HINT}")
    return keys


def load_or_create_keys(data_dir: Path, env_value: str | None) -> list[bytes]:
    """Return the store's Fernet keys, first one used for encryption.

    ``env_value`` (``;``-separated keys, e.g. from an environment variable) wins
    when set and non-blank. Otherwise the keys come from ``data_dir/encryption.key``,
    created with mode 0600 on first use. Raises ``ValueError`` for malformed keys
    and ``PermissionError`` when the key file is readable by group or others.
    Blocking file I/O: call at startup or through ``asyncio.to_thread``.
    """
    if env_value is not None and env_value.strip():
        return _parse_keys(env_value, "the configured key list")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / KEY_FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
        log.info("created encryption key file %s", path)
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"encryption key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):o}); restrict it with: chmod 600 {path}"
        )
    return _parse_keys(path.read_text(encoding="ascii", errors="replace"), str(path))


class ClusterStore:
    """Cluster rows in one SQLite file. Use ``await ClusterStore.open(...)``."""

    def __init__(self, db: aiosqlite.Connection, fernet: MultiFernet, path: Path):
        self._db = db
        self._fernet = fernet
        self.path = path
        # One connection is shared by all tasks; the lock keeps each write and its
        # commit together so one task's commit never lands half of another's write.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, keys: list[bytes]) -> ClusterStore:
        """Open (creating if needed) the store at ``path`` and check the keys fit it."""
        if not keys:
            raise StoreKeyError(f"no encryption keys given for the store at {path}")
        try:
            fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise StoreKeyError(
                f"an encryption key for the store at {path} is not a valid Fernet key; "
                f"{GENERATE_HINT}"
            ) from None
        path = Path(path)
        await asyncio.to_thread(_create_private_file, path)
        db = await aiosqlite.connect(path)
        store = cls(db, fernet, path)
        try:
            await store._setup()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def _setup(self) -> None:
        db = self._db
        await db.execute("PRAGMA busy_timeout = 10000")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with db.execute("SELECT MAX(version) FROM schema_version") as cur:
            row = await cur.fetchone()
        version = row[0] if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"the store at {self.path} has schema version {version}, but this "
                f"jhub-gateway only understands up to version {SCHEMA_VERSION}; "
                "upgrade jhub-gateway or point it at a different data directory"
            )
        if version is None:
            await db.executescript(_SCHEMA_V1)
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (1,))
            await db.commit()
            log.info("created cluster store %s", self.path)
            version = 1
        # Migrations, in order: `if version < N: apply step N`, then record N.
        if version < 2:
            await db.executescript(_SCHEMA_V2)
            await db.execute("DELETE FROM schema_version")
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (2,))
            await db.commit()
            log.info("cluster store %s at schema version %d", self.path, 2)
        await self._check_keys()

    async def _check_keys(self) -> None:
        async with self._db.execute("SELECT value FROM meta WHERE key = 'key_check'") as cur:
            row = await cur.fetchone()
        if row is None:
            token = self._fernet.encrypt(_KEY_CHECK_PLAINTEXT)
            await self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('key_check', ?)", (token,)
            )
            await self._db.commit()
            return
        self._decrypt(row[0], "the key check")

    def _decrypt(self, blob: bytes, what: str) -> bytes:
        try:
            return self._fernet.decrypt(bytes(blob))
        except InvalidToken:
            # `from None`: the chained InvalidToken adds nothing and no secret may leak.
            raise StoreKeyError(
                f"cannot decrypt {what} in the store at {self.path}: none of the "
                "configured encryption keys is the one it was written with; restore the "
                "previous key (keep it after the new one to rotate keys)"
            ) from None

    async def save(self, cluster: Cluster, state: dict[str, Any]) -> None:
        """Insert or replace the row for ``cluster.name``.

        ``state`` is stored as plain JSON: it must hold no secrets.
        """
        secrets = json.dumps({"token": cluster.token, "tls_key": cluster.tls_key})
        row = (
            cluster.name,
            cluster.username,
            cluster.status.name,
            cluster.reason,
            cluster.message,
            json.dumps(cluster.options),
            json.dumps(cluster.config),
            cluster.tls_cert,
            cluster.scheduler_address,
            cluster.dashboard_address,
            cluster.api_address,
            cluster.start_time,
            cluster.stop_time,
            cluster.target_workers,
            cluster.active_workers,
            json.dumps([_event_to_json(e) for e in cluster.events]),
            json.dumps(state),
            self._fernet.encrypt(secrets.encode()),
        )
        async with self._lock:
            await self._db.execute(
                f"INSERT OR REPLACE INTO clusters ({_COLUMNS}, updated_ms) "
                f"VALUES ({', '.join('?' * len(row))}, ?)",
                (*row, now_ms()),
            )
            await self._db.commit()

    async def get(self, name: str) -> tuple[Cluster, dict[str, Any]] | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM clusters WHERE name = ?", (name,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else self._from_row(row)

    async def load_active(self) -> list[tuple[Cluster, dict[str, Any]]]:
        """All non-terminal clusters, oldest first, for re-adoption after a restart."""
        marks = ", ".join("?" * len(_TERMINAL))
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM clusters WHERE status NOT IN ({marks}) "
            "ORDER BY start_time, name",
            _TERMINAL,
        ) as cur:
            rows = await cur.fetchall()
        return [self._from_row(r) for r in rows]

    async def load_terminal(self) -> list[tuple[Cluster, dict[str, Any]]]:
        """Stopped and failed clusters still kept (``purge_terminal`` bounds them), oldest first."""
        marks = ", ".join("?" * len(_TERMINAL))
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM clusters WHERE status IN ({marks}) ORDER BY start_time, name",
            _TERMINAL,
        ) as cur:
            rows = await cur.fetchall()
        return [self._from_row(r) for r in rows]

    async def delete(self, name: str) -> None:
        async with self._lock:
            await self._db.execute("DELETE FROM clusters WHERE name = ?", (name,))
            await self._db.commit()

    async def purge_terminal(self, older_than_ms: int) -> int:
        """Delete stopped/failed clusters that stopped more than ``older_than_ms`` ago.

        ``older_than_ms`` is an age (e.g. 24 h = 86_400_000), not a timestamp.
        Returns the number of rows deleted.
        """
        cutoff = now_ms() - older_than_ms
        marks = ", ".join("?" * len(_TERMINAL))
        async with self._lock:
            cur = await self._db.execute(
                f"DELETE FROM clusters WHERE status IN ({marks}) "
                "AND COALESCE(stop_time, start_time) < ?",
                (*_TERMINAL, cutoff),
            )
            count = cur.rowcount
            await cur.close()
            await self._db.commit()
        if count:
            log.info("purged %d terminal clusters from the store", count)
        return count

    async def user_uid(self, username: str, low: int, high: int, usable: Any) -> int:
        """The uid of ``username``'s isolated clusters, allocated from ``[low, high]`` once.

        ``usable(uid)`` says whether a free uid may be handed out (e.g. not an OS
        account's). Raises ``StoreError`` when the range is exhausted.
        """
        async with self._lock:
            async with self._db.execute(
                "SELECT uid FROM user_uids WHERE username = ?", (username,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                return int(row[0])
            async with self._db.execute(
                "SELECT uid FROM user_uids WHERE uid BETWEEN ? AND ?", (low, high)
            ) as cur:
                taken = {int(r[0]) for r in await cur.fetchall()}
            uid = next((u for u in range(low, high + 1) if u not in taken and usable(u)), None)
            if uid is None:
                raise StoreError(
                    f"no free uid left in LocalBackend.uid_range ({low}, {high}); widen it"
                )
            await self._db.execute(
                "INSERT INTO user_uids (username, uid) VALUES (?, ?)", (username, uid)
            )
            await self._db.commit()
        log.info("allocated uid %d to hub user %s", uid, username)
        return uid

    async def rotate(self) -> int:
        """Re-encrypt every secret with the first key; returns the rows rewritten.

        After this the older keys can be removed from the configuration.
        """
        async with self._lock:
            async with self._db.execute("SELECT name, secrets FROM clusters") as cur:
                rows = list(await cur.fetchall())
            for name, blob in rows:
                self._decrypt(blob, f"the secrets of cluster {name!r}")
                new = self._fernet.rotate(bytes(blob))
                await self._db.execute(
                    "UPDATE clusters SET secrets = ? WHERE name = ?", (new, name)
                )
            await self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'key_check'",
                (self._fernet.encrypt(_KEY_CHECK_PLAINTEXT),),
            )
            await self._db.commit()
        return len(rows)

    def _from_row(self, row: Any) -> tuple[Cluster, dict[str, Any]]:
        name = row[0]
        secrets = json.loads(self._decrypt(row[17], f"the secrets of cluster {name!r}"))
        cluster = Cluster(
            name=name,
            username=row[1],
            status=ClusterStatus[row[2]],
            reason=row[3],
            message=row[4],
            options=json.loads(row[5]),
            config=json.loads(row[6]),
            token=secrets["token"],
            tls_cert=row[7],
            tls_key=secrets["tls_key"],
            scheduler_address=row[8],
            dashboard_address=row[9],
            api_address=row[10],
            start_time=row[11],
            stop_time=row[12],
            target_workers=row[13],
            active_workers=row[14],
            events=[ClusterEvent(**e) for e in json.loads(row[15])],
        )
        return cluster, json.loads(row[16])


def _event_to_json(event: ClusterEvent) -> dict[str, Any]:
    # Seconds as a float, unlike the wire's milliseconds, so a round trip is exact.
    return {
        "time": event.time,
        "kind": event.kind,
        "reason": event.reason,
        "message": event.message,
    }


def _create_private_file(path: Path) -> None:
    # Create the database 0600 before SQLite does (it would honour the umask):
    # cluster metadata is not for other local users.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
