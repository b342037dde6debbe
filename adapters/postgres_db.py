"""The PostgreSQL registry's database: pooled connections, transactions under the registry's
write lock, the schema created or upgraded when opened, and errors that never show the URL's
credentials.

- Connections come from a small pool (psycopg_pool), in autocommit mode. A read is its
  statements alone, each seeing every commit made before it (the gateway's per-request
  lookups take one round trip each); a write is a transaction that first takes the
  registry's write lock, a transaction-level advisory lock: writers queue on it exactly as
  on SQLite's `BEGIN IMMEDIATE`, so numbering versions and changing the artifact store are
  done by one writer at a time across every gateway and CLI. A writer waits for the lock at
  most the busy timeout (`lock_timeout`), then gets `RegistryBusy`.
- A pooled connection the server has closed (a restart, an idle timeout) is replaced before
  it is used, found without a round trip: its socket has something to read.
- Errors: a failed statement is a `RegistryError` with the server's one-line reason; an
  unreachable, restarting or overloaded server is `RegistryUnavailable` (503). Messages name
  no server; logs name it without user or password (`where`).
"""

from __future__ import annotations

import functools
import logging
import re
import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from adapters.errors import RegistryBusy, RegistryError, RegistryUnavailable
from adapters.postgres_schema import (
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
)

__all__ = ["WRITE_LOCK", "PostgresDatabase", "redacted_url"]

log = logging.getLogger(__name__)

WRITE_LOCK = 0x6C6F7261675F7267  # the advisory lock key ("lorag_rg"); per database
MAX_CONNECTIONS = 8
"""Per process: the gateway's event loop and registry threads, with room to spare."""
CONNECT_TIMEOUT_S = 10  # unless the URL sets `connect_timeout`

_Conn = psycopg.Connection[DictRow]


def redacted_url(url: str) -> str:
    """`postgresql://host:port/dbname`: where the registry is, without user or password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(an invalid LORAG_REGISTRY_URL)"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{host}{port}/{params.get('dbname') or ''}"


def _secrets_of(url: str) -> list[str]:
    """What must never be shown: the URL's password and its user-and-password part."""
    found = [url]
    userinfo = re.match(r"^[a-z]+://([^@/]*)@", url)
    if userinfo:
        found.append(userinfo.group(1))
        found.append(userinfo.group(1).partition(":")[2])
    with suppress(psycopg.Error):
        found.append(str(conninfo_to_dict(url).get("password") or ""))
    return sorted({s for s in found if s}, key=len, reverse=True)  # longest first


def _closed_by_server(conn: _Conn) -> bool:
    """Whether the server has closed an idle pooled connection (a restart, an idle timeout),
    found without a round trip: an idle connection's socket has nothing to read unless the
    server said goodbye or hung up."""
    try:
        return conn.closed or bool(select.select([conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError, psycopg.Error):
        return True


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The registry's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A pooled connection that takes the registry's SQL (`?` placeholders)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _Conn):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> psycopg.Cursor[DictRow]:
        return self._conn.execute(_placeholders(sql), tuple(params))


class PostgresDatabase:
    """The registry's PostgreSQL database at `url`; creates or upgrades its schema when
    opened (RegistryError, naming the server but no credentials, when it cannot)."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0):
        self.where = redacted_url(url)
        self._secrets = _secrets_of(url)
        self._busy_timeout_s = busy_timeout_s
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise RegistryError(
                f"LORAG_REGISTRY_URL is not a valid PostgreSQL URL: {self._redacted(exc)}"
            ) from None
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in given:
            kwargs["application_name"] = "lorag"
        self._create_schema(url, kwargs)
        self._pool = ConnectionPool[_Conn](
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=MAX_CONNECTIONS,
            open=True,
            configure=self._configure,
            timeout=busy_timeout_s,
            name="lorag-registry",
        )

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[_Connection]:
        """One call's connection; `write`: a transaction holding the write lock."""
        try:
            conn = self._connection()
            try:
                if write:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                        yield _Connection(conn)
                else:
                    yield _Connection(conn)
            finally:
                self._pool.putconn(conn)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _connection(self) -> _Conn:
        """A pooled connection the server has not closed. One it has (after a restart every
        idle one has) is closed, so the pool drops it and opens another, and the next is
        tried at once."""
        for _ in range(MAX_CONNECTIONS + 1):
            conn = self._pool.getconn()
            if not _closed_by_server(conn):
                return conn
            conn.close()
            self._pool.putconn(conn)
        return self._pool.getconn()

    def close(self) -> None:
        self._pool.close()

    def _configure(self, conn: _Conn) -> None:
        """Each new connection: UTC times, and how long a writer waits for the write lock."""
        lock_ms = max(1, round(self._busy_timeout_s * 1000))
        conn.execute(
            "SELECT set_config('TimeZone', 'UTC', false), set_config('lock_timeout', %s, false)",
            (f"{lock_ms}ms",),
        )

    def _create_schema(self, url: str, kwargs: dict[str, Any]) -> None:
        try:
            with psycopg.connect(url, **kwargs) as conn:
                self._configure(conn)
                if self._schema_version(conn) == SCHEMA_VERSION:
                    return  # the usual case: nothing to create, no lock taken
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    self._upgrade(conn)
        except RegistryError:
            raise
        except psycopg.Error as exc:
            raise RegistryError(
                f"cannot open the registry {self.where}: {self._redacted(exc)}"
            ) from None

    @staticmethod
    def _schema_version(conn: _Conn) -> int:
        """The tables' schema version; 0 for a database lorag has not set up."""
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL AS t").fetchone()
        if not exists or not exists["t"]:
            return 0
        row = conn.execute("SELECT max(version) AS version FROM schema_version").fetchone()
        return int(row["version"]) if row and row["version"] is not None else 0

    def _upgrade(self, conn: _Conn) -> None:
        """Bring the tables to SCHEMA_VERSION (inside the caller's locked transaction: the
        version is read again, another gateway may have upgraded them meanwhile)."""
        conn.execute(SCHEMA_VERSION_TABLE)
        found = self._schema_version(conn)
        if found > SCHEMA_VERSION:
            raise RegistryError(
                f"registry {self.where} has schema {found}, newer than this lorag's "
                f"({SCHEMA_VERSION}): upgrade lorag"
            )
        foreign = conn.execute("SELECT to_regclass('tenants') IS NOT NULL AS t").fetchone()
        if not found and foreign and foreign["t"]:
            raise RegistryError(
                f"registry {self.where} holds a `tenants` table that lorag did not create: "
                "give lorag a database (or a schema, `?options=-csearch_path%3Dlorag`) of its own"
            )
        for version in range(found or SCHEMA_VERSION, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            log.info("registry %s upgraded to schema %d", self.where, version + 1)
        conn.execute(SCHEMA)
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))

    def _error(self, exc: psycopg.Error) -> RegistryError:
        reason = self._redacted(exc)
        log.warning("registry %s: %s", self.where, reason)
        if isinstance(exc, pg_errors.LockNotAvailable):
            return RegistryBusy(
                "the registry is busy: another process is writing to it; retry shortly"
            )
        if isinstance(exc, psycopg.OperationalError):  # refused, lost, shutting down, full
            return RegistryUnavailable("the registry database is unavailable; retry shortly")
        return RegistryError(f"the registry database failed: {reason}")

    def _redacted(self, exc: psycopg.Error) -> str:
        """The error's first line (the server's own reason where it gave one), with every
        secret of the URL blanked."""
        diag = getattr(exc, "diag", None)
        primary = diag.message_primary if diag is not None else None
        text = primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
