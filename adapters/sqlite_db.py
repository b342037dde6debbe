"""The SQLite registry's file: its tables, their upgrades in place, and its transactions.

The file is in WAL mode, so readers never wait for the writer and several processes can use it
at once. Each thread keeps its own connection (opened again after a fork or an error);
a write transaction is `BEGIN IMMEDIATE`: it holds the file's write lock from its start, so the
store changes made inside it (putting or removing an artifact folder) are serialized between
processes too.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters.errors import RegistryBusy, RegistryError

__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "SqliteDatabase"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE        -- sha256 hex of the API key
);

-- One row per adapter name ever used: version numbers are never reused after a delete.
CREATE TABLE IF NOT EXISTS adapter_names (
    name         TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS adapter_versions (
    name          TEXT NOT NULL REFERENCES adapter_names (name),
    version       INTEGER NOT NULL CHECK (version >= 1),
    base_model    TEXT NOT NULL,
    rank          INTEGER NOT NULL,
    alpha         REAL NOT NULL,
    targets       TEXT NOT NULL,             -- JSON list
    sha256        TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    origin        TEXT NOT NULL,
    metrics       TEXT NOT NULL DEFAULT '{}', -- JSON object
    notes         TEXT NOT NULL DEFAULT '',
    owner         TEXT REFERENCES tenants (id),
    declared_base TEXT,
    gate          TEXT,                      -- JSON object: the latest gate verdict (NULL: none)
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS adapter_versions_sha256 ON adapter_versions (sha256);
CREATE INDEX IF NOT EXISTS adapter_versions_owner ON adapter_versions (owner);

CREATE TABLE IF NOT EXISTS modes (
    tenant     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    adapter    TEXT,                          -- NULL with version NULL = the base model
    version    INTEGER,
    retrieval  TEXT NOT NULL DEFAULT '{}',    -- JSON object
    position   INTEGER NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    system_prompt TEXT,                       -- the operator's instructions (NULL: none)
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (adapter, version) REFERENCES adapter_versions (name, version),
    CHECK ((adapter IS NULL) = (version IS NULL))
);
CREATE INDEX IF NOT EXISTS modes_adapter ON modes (adapter, version);
CREATE UNIQUE INDEX IF NOT EXISTS modes_one_default ON modes (tenant) WHERE is_default = 1;

-- Every change of a mode, kept after the mode (or its tenant) is gone: an audit trail.
CREATE TABLE IF NOT EXISTS mode_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_target TEXT,
    to_target   TEXT,
    gate        TEXT,
    forced      INTEGER NOT NULL DEFAULT 0,
    changed     TEXT NOT NULL DEFAULT '[]'    -- JSON list
);
CREATE INDEX IF NOT EXISTS mode_history_mode ON mode_history (tenant, mode, id);
"""

# Schema upgrades in place: user_version N -> N+1 (the tables' CREATE statements above are
# the newest shape; these bring an older file there before they run).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE adapter_versions ADD COLUMN gate TEXT",
        "ALTER TABLE modes ADD COLUMN system_prompt TEXT",
    ),
}


class SqliteDatabase:
    """The registry's SQLite file; creates or checks its schema when opened."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and self._local.pid == os.getpid():
            conn.close()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction on this thread's connection; sqlite errors become RegistryError
        (RegistryBusy when another writer held the lock for the whole busy timeout). The
        messages name no folder: they may reach HTTP callers."""
        try:
            conn = self._thread_connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            self._drop_thread_connection()
            raise self._error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._drop_thread_connection()  # closing rolls back
            raise self._error(exc) from exc
        except BaseException:
            _rollback(conn)
            raise

    def close(self) -> None:
        """Close the calling thread's connection; other threads' close with their thread
        (a sqlite3 connection belongs to the thread that opened it)."""
        self._drop_thread_connection()

    def _error(self, exc: sqlite3.Error) -> RegistryError:
        log.warning("registry %s: %s", self.path, exc)
        if _is_busy(exc):
            return RegistryBusy(
                "the registry is busy: another process is writing to it; retry shortly"
            )
        return RegistryError(f"the registry database failed: {exc}")

    def _create_schema(self) -> None:
        try:
            conn = self._connect()
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                found = conn.execute("PRAGMA user_version").fetchone()[0]
                if found > SCHEMA_VERSION:
                    raise RegistryError(
                        f"registry {self.path} has schema {found}, newer than this lorag's "
                        f"({SCHEMA_VERSION}): upgrade lorag"
                    )
                if found:  # 0: a new file
                    for version in range(found, SCHEMA_VERSION):
                        for statement in MIGRATIONS[version]:
                            conn.execute(statement)
                        log.info("registry %s upgraded to schema %d", self.path, version + 1)
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            finally:
                _rollback(conn)
                conn.close()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot initialize the registry {self.path}: {exc}") from exc


def _is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection held the lock too long."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc).lower()
    return "database is locked" in message or "database is busy" in message


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
