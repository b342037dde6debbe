"""`PostgresRegistry`: the registry in a PostgreSQL database several gateways share.

For more than one gateway (replicas behind a load balancer, several machines): every gateway
and CLI given the same `LORAG_REGISTRY_URL` sees one set of tenants, keys, adapter versions
and modes. A change made through any of them is what every gateway serves from its next
request on: the gateway reads modes and keys from the registry per request and caches none
(its loaded-adapter list is keyed by the immutable `name@vN`, so nothing there goes stale).

The artifacts stay files: every gateway serves a version from its own adapter store
(`LORAG_DATA_DIR/adapters`), so the stores must hold the same contents - one shared folder
(a network volume), or each version's folder copied to every gateway before a mode points
at it. The registry's write lock serializes store changes only between processes that
share that folder.
"""

from __future__ import annotations

from adapters.postgres_db import PostgresDatabase
from adapters.sql_registry import SqlRegistry
from adapters.store import AdapterStore

__all__ = ["PostgresRegistry"]


class PostgresRegistry(SqlRegistry):
    """The registry in the PostgreSQL database at `url`, with artifacts in `store`.

    `busy_timeout_s`: how long a write waits for another writer's lock (and a call for a
    free pooled connection) before `RegistryBusy` / `RegistryUnavailable`."""

    def __init__(self, url: str, store: AdapterStore, *, busy_timeout_s: float = 30.0):
        database = PostgresDatabase(url, busy_timeout_s=busy_timeout_s)
        self.where = database.where  # the server and database, without credentials
        super().__init__(database, store)
