"""Building the registry from the one `Settings` object (and, from `lorag.base_model`, the
base model's description the registry checks adapters against)."""

from __future__ import annotations

from adapters.sql_registry import SqlRegistry
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from lorag.base_model import base_model_info
from lorag.settings import Settings

__all__ = ["base_model_info", "open_registry"]


def open_registry(settings: Settings, *, busy_timeout_s: float = 30.0) -> SqlRegistry:
    """The registry `settings` name, storing artifacts under `settings.adapters_dir`:
    PostgreSQL at `settings.registry_url` when set (several gateways share it), else the
    SQLite file at `settings.registry_path`.

    `busy_timeout_s`: how long a call waits for another process's write lock before
    `RegistryBusy` (the gateway passes `settings.registry_busy_timeout_s`, shorter)."""
    store = AdapterStore(settings.adapters_dir)
    if settings.registry_url is not None:
        from adapters.postgres_registry import PostgresRegistry  # psycopg: only when used

        url = settings.registry_url.get_secret_value()
        return PostgresRegistry(url, store, busy_timeout_s=busy_timeout_s)
    return SqliteRegistry(settings.registry_path, store, busy_timeout_s=busy_timeout_s)
