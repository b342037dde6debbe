"""The ingest algorithm: skip unchanged documents, write changed ones without a gap, sync.

For each pending document of a tenant:
- unchanged (every stored chunk has the same content hash and pipeline, and all
  `chunk_count` chunks are there): skipped without parsing;
- new or changed: parsed, chunked, embedded, its chunks upserted (ids are
  uuid5(tenant, doc_id, index), so chunk i replaces the old chunk i in place), and only then
  its stale chunks (ids beyond the new count) deleted, so it never drops out of search;
- unreadable: reported with the reason, the stored version (if any) kept.
With `scrub_pii`, each document read is scrubbed (`ingest.scrubbing`) before it is chunked,
and the report counts the placeholders put in.
A crash at any point leaves a state that a rerun repairs: a half-written document is not
"complete", so it is written again and its leftovers removed. With sync scopes, documents
of the tenant recorded under a scope but absent from this ingest are deleted afterwards.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.errors import InvalidDocument
from ingest.models import Chunk, IngestReport, ProgressEvent, SourceDocument
from ingest.scrubbing import scrub_document, scrubbed_pipeline
from ingest.sources import PendingDocument
from ingest.store.base import Store
from ingest.store.points import (
    CHUNK_COUNT,
    CHUNK_INDEX,
    CONTENT_HASH,
    DOC_ID,
    INGESTED_AT,
    METADATA,
    PAGE,
    PIPELINE,
    SCOPE,
    SECTION,
    SOURCE,
    TEXT,
    TITLE,
    ChunkPoint,
)

__all__ = [
    "EMBED_GROUP",
    "PIPELINE_VERSION",
    "STATE_FIELDS",
    "UPSERT_BATCH",
    "DocumentState",
    "Ingestor",
    "ProgressFn",
    "document_states",
    "utc_now",
]

log = logging.getLogger(__name__)

PIPELINE_VERSION = "1"
EMBED_GROUP = 128
"""Chunks embedded per call (a progress update after each)."""
UPSERT_BATCH = 256
STATE_FIELDS = [DOC_ID, CHUNK_INDEX, CHUNK_COUNT, CONTENT_HASH, PIPELINE, SCOPE, SOURCE]

ProgressFn = Callable[[ProgressEvent], None]


@dataclass(slots=True)
class DocumentState:
    """What the store holds for one document, gathered from its chunks' payloads."""

    hashes: set[str] = field(default_factory=set)
    pipelines: set[str] = field(default_factory=set)
    indexes: set[int] = field(default_factory=set)
    declared: set[int] = field(default_factory=set)
    scope: str | None = None
    source: str | None = None

    def is_current(self, content_hash: str, pipeline: str) -> bool:
        """All chunks written by this content and pipeline, none missing."""
        if self.hashes != {content_hash} or self.pipelines != {pipeline}:
            return False
        if len(self.declared) != 1:
            return False
        return self.indexes == set(range(next(iter(self.declared))))


def document_states(store: Store, tenant: str) -> dict[str, DocumentState]:
    states: dict[str, DocumentState] = {}
    for point in store.scroll(tenant, fields=STATE_FIELDS):
        payload = point.payload
        state = states.setdefault(str(payload.get(DOC_ID)), DocumentState())
        state.hashes.add(str(payload.get(CONTENT_HASH)))
        state.pipelines.add(str(payload.get(PIPELINE)))
        state.indexes.add(int(payload.get(CHUNK_INDEX, -1)))
        state.declared.add(int(payload.get(CHUNK_COUNT, -1)))
        state.scope = payload.get(SCOPE)
        state.source = payload.get(SOURCE)
    return states


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Parsed:
    pending: PendingDocument
    doc: SourceDocument
    chunks: list[Chunk]
    existed: bool
    scope: str | None
    pipeline: str


@dataclass(slots=True)
class _Scrubbing:
    """One run's scrubbing: on or off, and what it has replaced so far."""

    on: bool
    counts: Counter[str] = field(default_factory=Counter)


class Ingestor:
    """Runs one ingest of one tenant against a store (the caller serializes ingests)."""

    def __init__(self, store: Store, embedder: Embedder, chunker: Chunker, pipeline: str) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.pipeline = pipeline

    def run(
        self,
        tenant: str,
        pending: Sequence[PendingDocument],
        *,
        report: IngestReport | None = None,
        sync_scopes: set[str] | None = None,
        protected_sources: set[str] | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        scrub_pii: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        report = report if report is not None else IngestReport()
        pipeline = scrubbed_pipeline(self.pipeline, scrub_pii)
        scrubbing = _Scrubbing(scrub_pii)
        states = document_states(self.store, tenant)
        seen: set[str] = set()
        batch: list[_Parsed] = []
        done = 0

        def tick(current: str | None) -> None:
            if progress is not None:
                progress(ProgressEvent(done, len(pending), report.chunks, current))

        for item in pending:
            if cancel is not None and cancel.is_set():
                report.interrupted = True
                break
            done += 1
            if item.doc_id in seen:
                report.failed.append((item.doc_id, "duplicate document id in this ingest"))
                tick(item.doc_id)
                continue
            seen.add(item.doc_id)
            state = states.get(item.doc_id)
            if state is not None and state.is_current(item.content_hash, pipeline):
                report.unchanged.append(item.doc_id)
                if item.scope and state.scope != item.scope:
                    self.store.set_payload(tenant, item.doc_id, {SCOPE: item.scope})
                tick(item.doc_id)
                continue
            parsed = self._parse(item, state, report, pipeline, scrubbing)
            if parsed is not None:
                batch.append(parsed)
                if sum(len(p.chunks) for p in batch) >= EMBED_GROUP:
                    self._write(tenant, batch, report, functools.partial(tick, item.doc_id))
                    batch = []
            tick(item.doc_id)
        if batch and not report.interrupted:
            self._write(tenant, batch, report, lambda: tick(None))
        if sync_scopes and not report.interrupted:  # a partial ingest must not delete
            self._sync(tenant, states, seen, sync_scopes, protected_sources or set(), report)
        if scrubbing.on:
            report.scrubbed = dict(sorted(scrubbing.counts.items()))
        report.seconds = round(report.seconds + time.perf_counter() - started, 3)
        return report

    def _parse(
        self,
        item: PendingDocument,
        state: DocumentState | None,
        report: IngestReport,
        pipeline: str,
        scrubbing: _Scrubbing,
    ) -> _Parsed | None:
        name = item.doc_id
        found: Counter[str] = Counter()  # counted once the document is chunked, not before
        try:
            doc = item.load()
            if scrubbing.on:
                doc = scrub_document(doc, found)
            chunks = self.chunker.chunk(doc)
        except InvalidDocument as exc:
            report.failed.append((name, exc.message))
            return None
        except Exception as exc:  # a loader bug must not stop the other documents
            log.exception("cannot ingest %s", name)
            report.failed.append((name, f"{type(exc).__name__}: {exc}"))
            return None
        # a document ingested without a scope keeps the one it had
        scope = item.scope or (state.scope if state is not None else None)
        scrubbing.counts.update(found)
        return _Parsed(item, doc, chunks, state is not None, scope, pipeline)

    def _write(
        self,
        tenant: str,
        batch: list[_Parsed],
        report: IngestReport,
        on_progress: Callable[[], None],
    ) -> None:
        """Embed a batch of documents, then per document: upsert all, then drop the stale."""
        texts = [chunk.embed_text for parsed in batch for chunk in parsed.chunks]
        dense: list[list[float]] = []
        for start in range(0, len(texts), EMBED_GROUP):
            dense.extend(self.embedder.embed_documents(texts[start : start + EMBED_GROUP]))
            on_progress()
        vectors = iter(dense)
        now = utc_now()
        for parsed in batch:
            points = [self._point(parsed, chunk, next(vectors), now) for chunk in parsed.chunks]
            for start in range(0, len(points), UPSERT_BATCH):
                self.store.upsert(tenant, points[start : start + UPSERT_BATCH])
            self.store.delete_stale(tenant, parsed.doc.doc_id, len(points))
            (report.updated if parsed.existed else report.added).append(parsed.doc.doc_id)
            report.chunks += len(points)
        on_progress()

    def _point(self, parsed: _Parsed, chunk: Chunk, dense: list[float], now: str) -> ChunkPoint:
        doc = parsed.doc
        payload = {
            CHUNK_COUNT: len(parsed.chunks),
            CONTENT_HASH: parsed.pending.content_hash,
            PIPELINE: parsed.pipeline,
            SCOPE: parsed.scope,
            SOURCE: doc.source,
            TITLE: doc.title,
            SECTION: chunk.section,
            PAGE: chunk.page,
            TEXT: chunk.text,
            METADATA: dict(doc.metadata),
            INGESTED_AT: now,
        }
        sparse = self.embedder.sparse_document(chunk.embed_text)
        return ChunkPoint(doc.doc_id, chunk.index, dense, sparse, payload)

    def _sync(
        self,
        tenant: str,
        states: dict[str, DocumentState],
        seen: set[str],
        scopes: set[str],
        protected_sources: set[str],
        report: IngestReport,
    ) -> None:
        gone = [
            doc_id
            for doc_id, state in states.items()
            if state.scope in scopes
            and doc_id not in seen
            and state.source not in protected_sources
        ]
        if gone:
            self.store.delete_documents(tenant, gone)
            report.deleted.extend(gone)
