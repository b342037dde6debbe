"""Building the stateful parts from `Settings`: the registry and the knowledge base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.base_model import BaseModelInfo
from adapters.registry import Registry
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from service.base_model import resolve_base_model, served_model_name
from service.settings import Settings


def open_registry(settings: Settings) -> Registry:
    return SqliteRegistry(settings.registry_path, AdapterStore(settings.adapters_dir))


def base_model_info(settings: Settings) -> BaseModelInfo:
    return BaseModelInfo.from_folder(
        Path(resolve_base_model(settings)), name=served_model_name(settings)
    )


def open_knowledge(settings: Settings) -> Any:
    from ingest.knowledge import open_knowledge_base

    return open_knowledge_base(settings)
