"""Chunk storage: the `Store` interface and its two backends, picked by one setting.

`open_store` returns an `EdgeStore` (embedded qdrant-edge folder under the knowledge dir)
when no Qdrant URL is set, else a `QdrantStore` (a Qdrant server, or ":memory:").
"""

from __future__ import annotations

from pathlib import Path

from ingest.store.base import Store
from ingest.store.disk_space import MIN_FREE_BYTES
from ingest.store.points import ChunkPoint, SparseVec, StoredPoint, point_id

EDGE_FOLDER = "qdrant-edge"


def open_store(
    *,
    knowledge_dir: Path,
    qdrant_url: str | None,
    collection: str,
    dim: int | None,
    qdrant_api_key: str | None = None,
    min_free_bytes: int = MIN_FREE_BYTES,
) -> Store:
    """The store the settings name: a Qdrant URL (or ":memory:"), else the edge folder.

    `dim=None` opens an existing edge folder with its own vector size (to fail fast when
    the folder is locked, before loading an embedding model). `min_free_bytes`: the free
    space the edge folder's disk keeps (writes are refused below it); a server minds its own.
    """
    if qdrant_url:
        from ingest.store.server import QdrantStore

        if dim is None:
            raise ValueError("a Qdrant collection needs the vector size")
        return QdrantStore(qdrant_url, collection, dim, api_key=qdrant_api_key)
    from ingest.store.edge import EdgeStore

    return EdgeStore(edge_path(knowledge_dir, collection), dim, min_free_bytes=min_free_bytes)


def edge_path(knowledge_dir: Path, collection: str) -> Path:
    return Path(knowledge_dir) / EDGE_FOLDER / collection


def edge_store_exists(knowledge_dir: Path, collection: str) -> bool:
    from ingest.store.edge import CONFIG_FILE

    return (edge_path(knowledge_dir, collection) / CONFIG_FILE).is_file()


__all__ = [
    "ChunkPoint",
    "SparseVec",
    "Store",
    "StoredPoint",
    "edge_path",
    "edge_store_exists",
    "open_store",
    "point_id",
]
