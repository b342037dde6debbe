"""What the store holds: chunk points, their payload fields, ids and filter conditions.

A point is one chunk: a dense vector, a sparse BM25 vector and a payload. Its id is
uuid5(tenant, doc_id, chunk_index), so re-ingesting a document overwrites its chunks in
place and two tenants can never write the same point.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.errors import InvalidFilter

__all__ = [
    "CHUNK_COUNT",
    "CHUNK_INDEX",
    "CONTENT_HASH",
    "DENSE",
    "DOC_ID",
    "FILTER_FIELDS",
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
    "Scalar",
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
TENANT = "tenant"
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
METADATA = "metadata"
INGESTED_AT = "ingested_at"

KEYWORD_INDEXES = (DOC_ID, SOURCE, SCOPE)
"""Keyword payload indexes besides `tenant` (which is indexed with is_tenant=True)."""
FILTER_FIELDS = frozenset({DOC_ID, CHUNK_INDEX, CONTENT_HASH, SCOPE, SOURCE, TITLE, SECTION, PAGE})
"""Payload fields a search filter may name directly; any other key means `metadata.<key>`."""
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

Scalar = str | int | bool
Condition = tuple[str, Scalar | list[Scalar]]
"""(payload key, value): exact match; a list matches any of its values."""


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
    """A user's exact-match filter as conditions; raises `InvalidFilter` for bad keys/values."""
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise InvalidFilter("filter must be an object of payload key -> value", param="filter")
    conditions: list[Condition] = []
    for key, value in filter.items():
        if not isinstance(key, str) or not _FILTER_KEY.match(key):
            raise InvalidFilter(f"invalid filter key {key!r}", param="filter")
        if key == TENANT or key.startswith(f"{TENANT}."):
            raise InvalidFilter("the tenant cannot be filtered on", param="filter")
        direct = key in FILTER_FIELDS or key.startswith(f"{METADATA}.")
        path = key if direct else f"{METADATA}.{key}"
        conditions.append((path, _filter_value(key, value)))
    return conditions


def _filter_value(key: str, value: Any) -> Scalar | list[Scalar]:
    if isinstance(value, list):
        if not value or len(value) > 1000:
            raise InvalidFilter(f"filter {key!r}: a list needs 1 to 1000 values", param="filter")
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        if kinds not in ({str}, {int}):
            raise InvalidFilter(
                f"filter {key!r}: a list must hold only strings or only integers", param="filter"
            )
        return list(value)
    if isinstance(value, str | int | bool):
        return value
    raise InvalidFilter(
        f"filter {key!r}: value must be a string, integer or boolean", param="filter"
    )


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
