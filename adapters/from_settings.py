"""Building the registry from the one `Settings` object (and, from `lorag.base_model`, the
base model's description the registry checks adapters against)."""

from __future__ import annotations

from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from lorag.base_model import base_model_info
from lorag.settings import Settings

__all__ = ["base_model_info", "open_registry"]


def open_registry(settings: Settings, *, busy_timeout_s: float = 30.0) -> SqliteRegistry:
    """The SQLite registry at `settings.registry_path`, storing under `settings.adapters_dir`.

    `busy_timeout_s`: how long a call waits for another process's write lock before
    `RegistryBusy` (the gateway passes `settings.registry_busy_timeout_s`, shorter)."""
    return SqliteRegistry(
        settings.registry_path,
        AdapterStore(settings.adapters_dir),
        busy_timeout_s=busy_timeout_s,
    )
