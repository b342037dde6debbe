"""Building the stateful parts from `Settings`: the registry and the knowledge base."""

from __future__ import annotations

from typing import Any

from adapters.from_settings import base_model_info, open_registry
from lorag.settings import Settings

__all__ = ["base_model_info", "open_knowledge", "open_registry"]


def open_knowledge(settings: Settings) -> Any:
    from ingest.knowledge import open_knowledge_base

    return open_knowledge_base(settings)
