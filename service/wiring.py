"""Building the stateful parts from `Settings`: the registry and the knowledge base."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.from_settings import base_model_info, open_registry
from lorag.settings import Settings

if TYPE_CHECKING:
    from ingest.knowledge import KnowledgeBase

__all__ = ["base_model_info", "open_knowledge", "open_registry"]


def open_knowledge(settings: Settings) -> KnowledgeBase:
    from ingest.knowledge import open_knowledge_base

    return open_knowledge_base(settings)
