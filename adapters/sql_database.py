"""What the SQL registry (`adapters.sql_registry`) needs of a database: the one seam between
its logic and the two engines it runs on, SQLite (`adapters.sqlite_db`) and PostgreSQL
(`adapters.postgres_db`).

The registry writes its statements once, in the SQL both engines share, with `?` for
parameters (PostgreSQL's connection translates them). Rows are read by column name. A write
transaction holds the registry's one write lock from its start to its end: every writer
(another thread, process or gateway) waits for it, so reading a number and writing the next,
or changing the artifact store, happens for one writer at a time, as if alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["SqlConnection", "SqlCursor", "SqlDatabase"]


class SqlCursor(Protocol):
    """A statement's result: rows indexed by column name (`row["name"]`)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    """A connection inside a transaction; `sql` uses `?` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> SqlCursor: ...


class SqlDatabase(Protocol):
    """A registry database with its schema in place."""

    def transaction(self, *, write: bool) -> AbstractContextManager[SqlConnection]:
        """One transaction; `write` takes the registry's write lock first. Database errors
        leave it as `adapters.errors.RegistryError` (`RegistryBusy` when the write lock
        stayed taken for the whole busy timeout), with messages fit for HTTP callers."""
        ...

    def close(self) -> None:
        """Release the connections (a closed database is not used again)."""
        ...
