"""Fixtures for the knowledge-base tests: one real embedding model per session, and real
knowledge bases (qdrant-edge folders, or qdrant-client ":memory:") built on it per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.embedding import Embedder
from ingest.knowledge import KnowledgeBase, open_knowledge_base
from lorag.settings import Settings

BACKENDS = ("edge", "memory")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once (sentence-transformers, CPU); torch's thread
    count is left as it is for the other test packages of the session."""
    import torch

    return Embedder(None, threads=torch.get_num_threads())


def kb_settings(data_dir: Path, backend: str = "edge", **fields: object) -> Settings:
    url = ":memory:" if backend == "memory" else None
    return Settings(data_dir=data_dir, qdrant_url=url, **fields)


@pytest.fixture
def open_kb(tmp_path: Path, embedder: Embedder) -> Iterator[Callable[..., KnowledgeBase]]:
    """Opens knowledge bases on the session model; all are closed after the test."""
    opened: list[KnowledgeBase] = []

    def factory(backend: str = "edge", data_dir: Path | None = None, **fields: object):
        settings = kb_settings(data_dir or tmp_path / "data", backend, **fields)
        kb = open_knowledge_base(settings, embedder=embedder)
        opened.append(kb)
        return kb

    yield factory
    for kb in opened:
        kb.close()  # closing twice is harmless


@pytest.fixture
def kb(open_kb: Callable[..., KnowledgeBase]) -> KnowledgeBase:
    """A fresh embedded (qdrant-edge) knowledge base."""
    return open_kb("edge")
