"""What the store holds: chunk points, their payload fields, ids and filter conditions.

A point is one chunk: a dense vector, a sparse BM25 vector and a payload. Its id is
uuid5(tenant, doc_id, chunk_index), so re-ingesting a document overwrites its chunks in
place and two tenants can never write the same point.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.errors import InvalidFilter
from lorag import errors as core_errors
from lorag import search_filter
from lorag.search_filter import Condition

__all__ = [
    "CHUNK_COUNT",
    "CHUNK_INDEX",
    "CONTENT_HASH",
    "DENSE",
    "DOC_ID",
    "INGESTED_AT",
    "KEYWORD_INDEXES",
    "METADATA",
    "PAGE",
    "PIPELINE",
    "POINT_NAMESPACE",
    "SCOPE",
    "SECTION",
    "SOURCE",
    "SPARSE",
    "TENANT",
    "TEXT",
    "TITLE",
    "ChunkPoint",
    "Condition",
    "SparseVec",
    "StoredPoint",
    "filter_conditions",
    "point_id",
    "stored_point",
]

DENSE = "dense"
SPARSE = "bm25"

POINT_NAMESPACE = uuid.UUID("6f1b3c9e-3d52-4b8e-9a57-2f0e6c1d4a10")

# payload fields (one point = one chunk)
TENANT = search_filter.TENANT_FIELD
DOC_ID = "doc_id"
CHUNK_INDEX = "chunk_index"
CHUNK_COUNT = "chunk_count"
CONTENT_HASH = "content_hash"
PIPELINE = "pipeline"
SCOPE = "scope"
SOURCE = "source"
TITLE = "title"
SECTION = "section"
PAGE = "page"
TEXT = "text"
METADATA = search_filter.METADATA_FIELD
INGESTED_AT = "ingested_at"

# A search filter may name DOC_ID, CHUNK_INDEX, CONTENT_HASH, SCOPE, SOURCE, TITLE, SECTION
# and PAGE directly (`lorag.search_filter.FILTER_FIELDS`); other keys mean METADATA.<key>.
KEYWORD_INDEXES = (DOC_ID, SOURCE, SCOPE)
"""Keyword payload indexes besides `tenant` (which is indexed with is_tenant=True)."""


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """A chunk to write. The store adds the tenant to the payload and computes the id."""

    doc_id: str
    chunk_index: int
    dense: list[float]
    sparse: SparseVec
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point read back: id, payload, and the score (search) or vectors (export)."""

    id: str
    payload: dict[str, Any]
    score: float | None = None
    dense: list[float] | None = None
    sparse: SparseVec | None = None


def point_id(tenant: str, doc_id: str, chunk_index: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, json.dumps([tenant, doc_id, chunk_index])))


def filter_conditions(filter: Mapping[str, Any] | None) -> list[Condition]:
    """A user's exact-match filter as conditions (`lorag.search_filter`'s rules); raises
    `InvalidFilter` (this package's) for bad keys/values."""
    try:
        return search_filter.filter_conditions(filter)
    except core_errors.InvalidFilter as exc:
        raise InvalidFilter(exc.message, param=exc.param) from None


def stored_point(record: Any, score: float | None = None) -> StoredPoint:
    """A point as either backend returns it (qdrant-edge or qdrant-client record/hit)."""
    dense = sparse = None
    vectors = record.vector
    if isinstance(vectors, dict):
        dense = vectors.get(DENSE)
        raw = vectors.get(SPARSE)
        if raw is not None:
            sparse = SparseVec(list(raw.indices), list(raw.values))
    return StoredPoint(str(record.id), dict(record.payload or {}), score, dense, sparse)
