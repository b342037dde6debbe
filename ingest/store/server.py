"""`QdrantStore`: the server backend, a Qdrant collection through `qdrant-client`.

`url` is a Qdrant server URL, or ":memory:" for qdrant-client's in-process local mode (a
brute-force stand-in with the same API, used by tests where no server can run). The
collection is created on first use with the same vectors as the edge backend. Connection
failures become `StoreUnavailable` (503).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ingest.errors import StoreIncompatible, StoreUnavailable
from ingest.store.base import Row, Store
from ingest.store.points import (
    DENSE,
    KEYWORD_INDEXES,
    SPARSE,
    TENANT,
    Condition,
    SparseVec,
    StoredPoint,
    stored_point,
)

__all__ = ["MEMORY", "QdrantStore"]

MEMORY = ":memory:"


@contextlib.contextmanager
def _translate_errors(url: str) -> Iterator[None]:
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except (ResponseHandlingException, httpx.TransportError, ConnectionError) as exc:
        raise StoreUnavailable(f"Qdrant at {url} does not answer: {exc}") from exc
    except UnexpectedResponse as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise StoreUnavailable(f"Qdrant at {url} failed: {exc}") from exc
        raise


class QdrantStore(Store):
    """Chunks in a Qdrant collection (dense cosine + sparse BM25 with IDF)."""

    kind = "qdrant"

    def __init__(
        self,
        url: str,
        collection: str,
        dim: int,
        *,
        api_key: str | None = None,
        timeout: int = 30,
    ) -> None:
        super().__init__(dim)
        from qdrant_client import QdrantClient, models

        self._models = models
        self.url = url
        self.collection = collection
        self._local = url == MEMORY
        # local mode is pure Python and not thread-safe: reads take the lock too
        self._read_lock: contextlib.AbstractContextManager[Any] = (
            self._write_lock if self._local else contextlib.nullcontext()
        )
        with _translate_errors(url):
            if self._local:
                self._client = QdrantClient(location=MEMORY)
            else:
                self._client = QdrantClient(
                    url=url, api_key=api_key, timeout=timeout, check_compatibility=False
                )
            self._ensure_collection()

    def _ensure_collection(self) -> None:
        m = self._models
        if self._client.collection_exists(self.collection):
            params = self._client.get_collection(self.collection).config.params
            vectors = params.vectors if isinstance(params.vectors, dict) else {}
            dense = vectors.get(DENSE)
            sparse = params.sparse_vectors or {}
            if dense is None or dense.size != self.dim or SPARSE not in sparse:
                raise StoreIncompatible(
                    f"Qdrant collection {self.collection!r} does not have a {self.dim}-dimension "
                    f"{DENSE!r} vector and a {SPARSE!r} sparse vector: use another collection"
                )
            return
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: m.VectorParams(size=self.dim, distance=m.Distance.COSINE)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode: "payload indexes have no effect"
            self._client.create_payload_index(
                self.collection,
                TENANT,
                m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
            )
            for field in KEYWORD_INDEXES:
                self._client.create_payload_index(
                    self.collection, field, m.PayloadSchemaType.KEYWORD
                )

    # --- translation --------------------------------------------------------------------------
    def _filter(self, conditions: list[Condition], keep_ids: Sequence[str] = ()) -> Any:
        m = self._models
        must = [
            m.FieldCondition(
                key=key,
                match=m.MatchAny(any=value)
                if isinstance(value, list)
                else m.MatchValue(value=value),
            )
            for key, value in conditions
        ]
        must_not = [m.HasIdCondition(has_id=list(keep_ids))] if keep_ids else None
        return m.Filter(must=must, must_not=must_not)

    def _sparse(self, vector: SparseVec) -> Any:
        return self._models.SparseVector(indices=vector.indices, values=vector.values)

    # --- hooks ----------------------------------------------------------------------------------
    def _upsert(self, rows: list[Row]) -> None:
        m = self._models
        points = [
            m.PointStruct(
                id=pid, vector={DENSE: dense, SPARSE: self._sparse(sparse)}, payload=payload
            )
            for pid, dense, sparse, payload in rows
        ]
        with _translate_errors(self.url):
            self._client.upsert(self.collection, points, wait=True)

    def _delete(self, conditions: list[Condition], keep_ids: list[str]) -> None:
        selector = self._models.FilterSelector(filter=self._filter(conditions, keep_ids))
        with _translate_errors(self.url):
            self._client.delete(self.collection, selector, wait=True)

    def _set_payload(self, conditions: list[Condition], values: dict[str, Any]) -> None:
        with _translate_errors(self.url):
            selector = self._models.FilterSelector(filter=self._filter(conditions))
            self._client.set_payload(self.collection, values, selector)

    def _query(
        self,
        conditions: list[Condition],
        idf_conditions: list[Condition],
        dense: list[float] | None,
        sparse: SparseVec | None,
        limit: int,
        score_threshold: float | None,
    ) -> list[StoredPoint]:
        m = self._models
        flt = self._filter(conditions)
        idf = m.SearchParams(idf=m.IdfCorpusParams(corpus=self._filter(idf_conditions)))
        args: dict[str, Any]
        if dense is not None:
            args = {"query": dense, "using": DENSE}
        else:
            assert sparse is not None, "a search needs a dense or a sparse query"
            args = {"query": self._sparse(sparse), "using": SPARSE, "search_params": idf}
        with self._read_lock, _translate_errors(self.url):
            result = self._client.query_points(
                self.collection,
                query_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=False,
                score_threshold=score_threshold,
                **args,
            )
        return [stored_point(hit, hit.score) for hit in result.points]

    def _scroll(
        self,
        conditions: list[Condition],
        fields: Sequence[str] | None,
        with_vectors: bool,
        page_size: int,
    ) -> Iterator[StoredPoint]:
        flt = self._filter(conditions)
        offset = None
        while True:
            with self._read_lock, _translate_errors(self.url):
                records, offset = self._client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=page_size,
                    offset=offset,
                    with_payload=list(fields) if fields is not None else True,
                    with_vectors=with_vectors,
                )
            for record in records:
                yield stored_point(record)
            if offset is None:
                return

    def _count(self, conditions: list[Condition]) -> int:
        with self._read_lock, _translate_errors(self.url):
            return int(self._client.count(self.collection, self._filter(conditions)).count)

    def close(self) -> None:
        with self._write_lock:
            self._client.close()
