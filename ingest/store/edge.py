"""`EdgeStore`: the embedded default backend, a qdrant-edge shard in a folder.

qdrant-edge is Qdrant's own segment, index and WAL engine running in-process (no server).
One process at a time may open a folder: a second open raises `StoreLocked` (409), so the
CLI can tell the user that the server holds the knowledge base. Searches and writes may
run from several threads; writes are serialized by the `Store` lock. Segments are not
optimized automatically (`optimize()` holds the GIL while it builds HNSW), so searches are
exact scans of the tenant's points, found through the tenant index.

A full disk would kill the process (qdrant-edge writes through memory maps: SIGBUS), so
every write, and opening, first checks that the folder's file system keeps `min_free_bytes`
free afterwards and is refused with `StoreFull` (503) otherwise (`ingest.store.disk_space`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import StoreIncompatible, StoreLocked, StoreUnavailable
from ingest.store.base import Row, Store
from ingest.store.disk_space import MIN_FREE_BYTES, DiskSpace, allocated_bytes, upsert_bytes
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

if TYPE_CHECKING:
    from qdrant_edge import EdgeShard

__all__ = ["CONFIG_FILE", "EdgeStore"]

log = logging.getLogger(__name__)

CONFIG_FILE = "edge_config.json"


class EdgeStore(Store):
    """Chunks in a qdrant-edge shard folder (dense cosine + sparse BM25 with IDF)."""

    kind = "qdrant-edge"

    def __init__(
        self, path: Path, dim: int | None, *, min_free_bytes: int = MIN_FREE_BYTES
    ) -> None:
        """Open (or create) the shard at `path`; `dim=None` takes the existing shard's.

        `StoreFull` when less than `min_free_bytes` is free on its file system: opening
        writes too (on a full disk qdrant-edge dies of SIGBUS here as well)."""
        import qdrant_edge as qe

        self._qe = qe
        self.path = Path(path)
        config_file = self.path / CONFIG_FILE
        exists = config_file.exists()
        if exists:
            dim = self._stored_dim(config_file, dim)
        elif dim is None:
            raise StoreUnavailable(f"no knowledge base at {self.path}")
        super().__init__(dim)
        self.path.mkdir(parents=True, exist_ok=True)
        self._space = DiskSpace(self.path, min_free_bytes)
        self._space.check(what="open")
        self._shard: EdgeShard | None = None
        try:
            if exists:
                self._shard = qe.EdgeShard.load(str(self.path))
            else:
                self._shard = qe.EdgeShard.create(str(self.path), self._config())
                self._create_indexes()
        except StoreIncompatible:
            raise
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise StoreLocked(
                    f"the knowledge base folder {self.path} is in use by another process "
                    "(a running lorag server?): stop it, or send the request to that server"
                ) from None
            raise StoreUnavailable(f"cannot open the knowledge base at {self.path}: {exc}") from exc

    def _stored_dim(self, config_file: Path, expected: int | None) -> int:
        try:
            size = int(json.loads(config_file.read_text())["vectors"][DENSE]["size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailable(f"unreadable store config {config_file}: {exc}") from exc
        if expected is not None and size != expected:
            raise StoreIncompatible(
                f"the knowledge base at {self.path} holds {size}-dimension vectors but the "
                f"embedding model makes {expected}: use the same model or a new data dir"
            )
        return size

    def _config(self) -> Any:
        qe = self._qe
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )

    def _create_indexes(self) -> None:
        qe = self._qe
        update = qe.UpdateOperation
        self._open_shard.update(
            update.create_field_index(TENANT, qe.KeywordIndexParams(is_tenant=True))
        )
        for field in KEYWORD_INDEXES:
            self._open_shard.update(update.create_field_index(field, qe.PayloadSchemaType.Keyword))

    # --- translation --------------------------------------------------------------------------
    def _filter(self, conditions: list[Condition], keep_ids: Sequence[str] = ()) -> Any:
        qe = self._qe
        must = [
            qe.FieldCondition(
                key, match=qe.MatchAny(value) if isinstance(value, list) else qe.MatchValue(value)
            )
            for key, value in conditions
        ]
        must_not = [qe.HasIdCondition(set(keep_ids))] if keep_ids else None
        return qe.Filter(must=must, must_not=must_not)

    def _sparse(self, vector: SparseVec) -> Any:
        return self._qe.SparseVector(indices=vector.indices, values=vector.values)

    # --- hooks ----------------------------------------------------------------------------------
    def _upsert(self, rows: list[Row]) -> None:
        self._space.check(upsert_bytes(rows), what="upsert")
        qe = self._qe
        points = [
            qe.Point(pid, {DENSE: dense, SPARSE: self._sparse(sparse)}, payload)
            for pid, dense, sparse, payload in rows
        ]
        self._open_shard.update(qe.UpdateOperation.upsert_points(points))

    def _delete(self, conditions: list[Condition], keep_ids: list[str]) -> None:
        self._space.check(what="delete")  # a delete frees nothing until optimize()
        self._open_shard.update(
            self._qe.UpdateOperation.delete_points_by_filter(self._filter(conditions, keep_ids))
        )

    def _set_payload(self, conditions: list[Condition], values: dict[str, Any]) -> None:
        self._space.check(what="set_payload")
        self._open_shard.update(
            self._qe.UpdateOperation.set_payload_by_filter(self._filter(conditions), values)
        )

    def _query(
        self,
        conditions: list[Condition],
        idf_conditions: list[Condition],
        dense: list[float] | None,
        sparse: SparseVec | None,
        limit: int,
        score_threshold: float | None,
    ) -> list[StoredPoint]:
        qe = self._qe
        flt = self._filter(conditions)
        idf = qe.SearchParams(idf=qe.IdfParams(corpus=self._filter(idf_conditions)))
        dense_query = qe.Query.Nearest(dense, using=DENSE) if dense is not None else None
        sparse_query = (
            qe.Query.Nearest(self._sparse(sparse), using=SPARSE) if sparse is not None else None
        )
        request = qe.QueryRequest(
            limit=limit,
            query=dense_query if dense_query is not None else sparse_query,
            filter=flt,
            params=None if dense_query is not None else idf,
            with_payload=True,
            with_vector=False,
            score_threshold=score_threshold,
        )
        return [stored_point(hit, hit.score) for hit in self._open_shard.query(request)]

    def _scroll(
        self,
        conditions: list[Condition],
        fields: Sequence[str] | None,
        with_vectors: bool,
        page_size: int,
    ) -> Iterator[StoredPoint]:
        qe = self._qe
        flt = self._filter(conditions)
        offset = None
        while True:
            records, offset = self._open_shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=page_size,
                    filter=flt,
                    with_payload=list(fields) if fields is not None else True,
                    with_vector=with_vectors,
                )
            )
            for record in records:
                yield stored_point(record)
            if offset is None:
                return

    def _count(self, conditions: list[Condition]) -> int:
        request = self._qe.CountRequest(exact=True, filter=self._filter(conditions))
        return int(self._open_shard.count(request))

    def _optimize(self) -> None:
        # merging segments writes them anew before the old ones go: room for a copy
        self._space.check(allocated_bytes(self.path / "segments"), what="optimize")
        self._open_shard.optimize()

    def flush(self) -> None:
        with self._write_lock:
            self._open_shard.flush()

    @property
    def _open_shard(self) -> EdgeShard:
        if self._shard is None:
            raise StoreUnavailable(f"the knowledge store at {self.path} is closed")
        return self._shard

    def close(self) -> None:
        """Flush and close; on a full disk the flush may fail ("No space left on device"):
        the shard is closed all the same (its WAL holds every write, replayed on open)."""
        with self._write_lock:
            if self._shard is not None:
                try:
                    self._shard.flush()
                except Exception as exc:
                    log.warning("cannot flush the knowledge store at %s: %s", self.path, exc)
                self._shard.close()
                self._shard = None
