"""`SqliteRegistry`: the registry in one SQLite file, shared by the server and the CLI.

The embedded default: one machine, one data folder, nothing to run. Thread- and process-safe:
each call is one transaction on the calling thread's connection (see `adapters.sqlite_db`);
writes hold the file's write lock while they change the store. Several gateways on several
machines share a PostgreSQL registry instead (`adapters.postgres_registry`).
"""

from __future__ import annotations

from pathlib import Path

from adapters.sql_registry import SqlRegistry
from adapters.sqlite_db import SqliteDatabase
from adapters.store import AdapterStore

__all__ = ["SqliteRegistry"]


class SqliteRegistry(SqlRegistry):
    """The registry in the SQLite file `db_path`, with artifacts in `store`."""

    def __init__(self, db_path: Path, store: AdapterStore, *, busy_timeout_s: float = 30.0):
        self.db_path = Path(db_path)
        super().__init__(SqliteDatabase(self.db_path, busy_timeout_s=busy_timeout_s), store)
