"""The `Store` interface: tenant-scoped chunk storage and search over dense and sparse vectors.

Every public method takes the tenant first and builds the tenant condition itself, so no
caller can read, count, change or delete another tenant's points; backends implement the
`_`-methods and receive conditions that always start with `("tenant", tenant)`. Writes are
serialized by one lock. Backends: `EdgeStore` (embedded qdrant-edge folder, the default)
and `QdrantStore` (qdrant-client: a Qdrant server, or ":memory:").
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ingest.errors import InvalidInput, StoreIncompatible
from ingest.models import check_tenant
from ingest.store.fusion import fuse
from ingest.store.points import (
    CHUNK_INDEX,
    DOC_ID,
    TENANT,
    ChunkPoint,
    Condition,
    SparseVec,
    StoredPoint,
    filter_conditions,
    point_id,
)

__all__ = ["Row", "Store", "prefetch_limit"]

Row = tuple[str, list[float], SparseVec, dict[str, Any]]
"""(point id, dense vector, sparse vector, payload) as handed to a backend."""

_PROTECTED_FIELDS = frozenset({TENANT, DOC_ID, CHUNK_INDEX})
_DELETE_BATCH = 500


class Store(ABC):
    """Chunk points of many tenants; every method is confined to the tenant it is given."""

    kind: str = "abstract"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._write_lock = threading.RLock()

    # --- writes -----------------------------------------------------------------------------
    def upsert(self, tenant: str, points: Sequence[ChunkPoint]) -> None:
        """Write chunks (replacing points with the same tenant, doc id and chunk index)."""
        check_tenant(tenant)
        rows: list[Row] = []
        for point in points:
            if len(point.dense) != self.dim:
                raise StoreIncompatible(
                    f"vector has {len(point.dense)} dimensions, the store holds {self.dim}"
                )
            payload = dict(point.payload)
            payload.update({TENANT: tenant, DOC_ID: point.doc_id, CHUNK_INDEX: point.chunk_index})
            pid = point_id(tenant, point.doc_id, point.chunk_index)
            rows.append((pid, point.dense, point.sparse, payload))
        if rows:
            with self._write_lock:
                self._upsert(rows)

    def delete_stale(self, tenant: str, doc_id: str, chunk_count: int) -> None:
        """Delete the document's points other than its chunks 0..chunk_count-1."""
        keep = [point_id(tenant, doc_id, index) for index in range(chunk_count)]
        conditions = self._scope(tenant, {DOC_ID: doc_id})
        with self._write_lock:
            self._delete(conditions, keep)

    def delete_documents(self, tenant: str, doc_ids: Sequence[str]) -> None:
        """Delete every point of these documents of the tenant."""
        ids = list(dict.fromkeys(doc_ids))
        for start in range(0, len(ids), _DELETE_BATCH):
            conditions = self._scope(tenant, {DOC_ID: ids[start : start + _DELETE_BATCH]})
            with self._write_lock:
                self._delete(conditions, [])

    def delete_tenant(self, tenant: str) -> None:
        """Delete every point of the tenant (the tenant itself is being deleted)."""
        conditions = self._scope(tenant, None)
        with self._write_lock:
            self._delete(conditions, [])

    def set_payload(self, tenant: str, doc_id: str, values: Mapping[str, Any]) -> None:
        """Set payload fields on every point of one document of the tenant."""
        if _PROTECTED_FIELDS & set(values):
            raise InvalidInput("tenant, doc_id and chunk_index cannot be changed")
        conditions = self._scope(tenant, {DOC_ID: doc_id})
        with self._write_lock:
            self._set_payload(conditions, dict(values))

    def optimize(self) -> None:
        """Build indexes now (edge: merges segments and builds HNSW); no-op where automatic."""
        with self._write_lock:
            self._optimize()

    # --- reads ------------------------------------------------------------------------------
    def query(
        self,
        tenant: str,
        *,
        dense: list[float] | None = None,
        sparse: SparseVec | None = None,
        limit: int = 10,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
    ) -> list[StoredPoint]:
        """Nearest chunks: dense (cosine), sparse (BM25), or both, fused by relative score
        (`ingest.store.fusion`: each list's scores as a fraction of its best, averaged;
        `score_threshold` then applies to the fused score, between 0 and 1)."""
        if dense is None and sparse is None:
            raise InvalidInput("a query needs a dense or a sparse vector")
        if limit < 1:
            raise InvalidInput("limit must be at least 1", param="top_k")
        conditions = self._scope(tenant, filter)
        everyone = self._scope(tenant, None)  # BM25's document frequencies: the tenant's
        if dense is None or sparse is None:
            return self._query(conditions, everyone, dense, sparse, limit, score_threshold)
        width = prefetch_limit(limit)
        lists = [
            self._query(conditions, everyone, dense, None, width, None),
            self._query(conditions, everyone, None, sparse, width, None),
        ]
        fused = fuse(lists, limit)
        if score_threshold is not None:
            fused = [point for point in fused if (point.score or 0.0) >= score_threshold]
        return fused

    def scroll(
        self,
        tenant: str,
        *,
        filter: Mapping[str, Any] | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        page_size: int = 1000,
    ) -> Iterator[StoredPoint]:
        """Every point of the tenant (matching `filter`), `fields` of the payload only if given."""
        return self._scroll(self._scope(tenant, filter), fields, with_vectors, page_size)

    def count(self, tenant: str, *, filter: Mapping[str, Any] | None = None) -> int:
        return self._count(self._scope(tenant, filter))

    @abstractmethod
    def close(self) -> None: ...

    # --- backend hooks ----------------------------------------------------------------------
    @staticmethod
    def _scope(tenant: str, filter: Mapping[str, Any] | None) -> list[Condition]:
        check_tenant(tenant)
        return [(TENANT, tenant), *filter_conditions(filter)]

    @abstractmethod
    def _upsert(self, rows: list[Row]) -> None: ...

    @abstractmethod
    def _delete(self, conditions: list[Condition], keep_ids: list[str]) -> None: ...

    @abstractmethod
    def _set_payload(self, conditions: list[Condition], values: dict[str, Any]) -> None: ...

    @abstractmethod
    def _query(
        self,
        conditions: list[Condition],
        idf_conditions: list[Condition],
        dense: list[float] | None,
        sparse: SparseVec | None,
        limit: int,
        score_threshold: float | None,
    ) -> list[StoredPoint]:
        """Nearest points by exactly one of `dense` and `sparse` (the other is None)."""

    @abstractmethod
    def _scroll(
        self,
        conditions: list[Condition],
        fields: Sequence[str] | None,
        with_vectors: bool,
        page_size: int,
    ) -> Iterator[StoredPoint]: ...

    @abstractmethod
    def _count(self, conditions: list[Condition]) -> int: ...

    def _optimize(self) -> None:
        return None


def prefetch_limit(limit: int) -> int:
    """Candidates each side of a hybrid query contributes to the fusion."""
    return max(limit * 4, 20)
