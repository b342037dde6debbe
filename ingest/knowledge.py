"""`KnowledgeBase`: the library API the service and the CLI call (sync and thread-safe).

    kb = open_knowledge_base(settings)
    kb.ingest_paths("acme", ["docs/"], sync=True)       # files -> report (tqdm bar)
    kb.ingest_documents("acme", [SourceDocument(...)])  # uploaded texts -> report
    kb.ingest_documents("acme", docs, scrub_pii=True)   # emails, phones, ... -> placeholders
    kb.search("acme", "how do I reset it?", top_k=5)    # -> [Hit]
    kb.list_documents("acme"); kb.delete_document("acme", "docs/a.md")
    job = kb.jobs.submit("acme", docs); kb.jobs.get("acme", job.id)
    kb.purge_tenant("acme")                             # the tenant is deleted: all of it goes
    kb.close()

Every call is confined to the tenant it names. Ingests and deletes are serialized (one at a
time per knowledge base); searches run concurrently with them and always find a document
that is being re-ingested. `scrub_pii` on an ingest (or a job) replaces personal data before
the documents are stored (`ingest.scrubbing`); a knowledge base opened with `scrub_pii=True`
(`LORAG_INGEST_SCRUB_PII`) scrubs every ingest and job, whatever they ask.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.errors import DocumentNotFound, InvalidInput, StoreIncompatible, StoreUnavailable
from ingest.jobs import JobRunner, remove_job_records
from ingest.models import (
    DocumentInfo,
    Hit,
    IngestReport,
    SearchMode,
    SourceDocument,
    check_tenant,
)
from ingest.pipeline import PIPELINE_VERSION, Ingestor, ProgressFn
from ingest.progress import IngestProgressBar
from ingest.sources import discover, pending_documents
from ingest.store import Store, edge_store_exists, open_store
from ingest.store.points import (
    CHUNK_INDEX,
    CONTENT_HASH,
    DOC_ID,
    INGESTED_AT,
    METADATA,
    PAGE,
    SECTION,
    SOURCE,
    TEXT,
    TITLE,
    StoredPoint,
)

if TYPE_CHECKING:
    from lorag.settings import Settings

__all__ = [
    "JOBS_FOLDER",
    "MAX_QUERY_CHARS",
    "MAX_TOP_K",
    "SEARCH_MODES",
    "KnowledgeBase",
    "open_existing_knowledge_base",
    "open_knowledge_base",
]

SEARCH_MODES = ("hybrid", "dense", "sparse")
MAX_TOP_K = 100
MAX_QUERY_CHARS = 4000
JOBS_FOLDER = "jobs"
_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class KnowledgeBase:
    """Ingest, search, list and delete documents of tenants; background ingest jobs."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        chunk_tokens: int,
        chunk_overlap: int,
        jobs_dir: Path | None = None,
        max_queued_jobs: int | None = None,
        kept_jobs: int | None = None,
        scrub_pii: bool = False,
    ) -> None:
        if store.dim != embedder.dim:
            raise StoreIncompatible(
                f"the store holds {store.dim}-dimension vectors, the model makes {embedder.dim}"
            )
        self.store = store
        self.embedder = embedder
        self.scrub_pii = scrub_pii
        """Every ingest scrubs personal data (an operator's policy: a job cannot turn it off)."""
        self.chunker = Chunker(
            embedder.new_tokenizer(),
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            max_tokens=embedder.max_tokens,
        )
        self.pipeline = (
            f"{embedder.name}|{self.chunker.chunk_tokens}|{chunk_overlap}|v{PIPELINE_VERSION}"
        )
        self._ingestor = Ingestor(store, embedder, self.chunker, self.pipeline)
        self._ingest_lock = threading.RLock()
        self._jobs_dir = jobs_dir
        self._job_limits = {
            name: value
            for name, value in (("max_queued", max_queued_jobs), ("keep", kept_jobs))
            if value is not None
        }
        self._jobs: JobRunner | None = None
        self._jobs_lock = threading.Lock()
        self._closed = False

    # --- ingest -------------------------------------------------------------------------------
    def ingest_documents(
        self,
        tenant: str,
        docs: Sequence[SourceDocument],
        *,
        sync_scope: str | None = None,
        doc_scopes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        scrub_pii: bool = False,
    ) -> IngestReport:
        """Ingest given documents. With `sync_scope`, they are the whole set of that scope:
        the tenant's documents recorded under it and missing here are deleted. With
        `scrub_pii`, personal data becomes placeholders before they are stored.

        `doc_scopes` (doc id -> scope) records the scope of documents that came from a
        folder (`lorag ingest` forwarded to the server sends each file's), so that a later
        sync of that folder deletes them once their file is gone; `sync_scope` wins."""
        check_tenant(tenant)
        for doc in docs:
            if not isinstance(doc, SourceDocument):
                raise InvalidInput("documents must be SourceDocument objects", param="documents")
        if sync_scope is not None and not sync_scope.strip():
            raise InvalidInput("sync_scope must not be blank", param="sync_scope")
        if doc_scopes is not None and not (
            isinstance(doc_scopes, Mapping)
            and all(isinstance(v, str) and v.strip() for v in doc_scopes.values())
        ):
            raise InvalidInput("document scopes must be non-blank strings", param="scope")
        pending = pending_documents(docs, sync_scope, doc_scopes)
        scopes = {sync_scope} if sync_scope else set()
        return self._run(
            tenant, pending, IngestReport(), scopes, set(), progress, cancel, scrub_pii
        )

    def ingest_paths(
        self,
        tenant: str,
        paths: Sequence[str | Path],
        *,
        sync: bool = False,
        progress: bool | ProgressFn = True,
        doc_id_prefix: str = "",
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        scrub_pii: bool = False,
    ) -> IngestReport:
        """Ingest files and folders (doc id = prefix + path relative to the folder given).

        With `sync`, each folder given is the whole set of its documents: documents ingested
        earlier from that folder (same prefix) whose file is gone are deleted. Files with an
        unsupported type inside folders are listed as skipped; `include`/`exclude` are glob
        patterns on the relative path. With `scrub_pii`, personal data becomes placeholders
        before the documents are stored.
        """
        check_tenant(tenant)
        started = time.perf_counter()
        found = discover(
            paths, doc_id_prefix=doc_id_prefix, include=include, exclude=exclude, sync=sync
        )
        report = IngestReport(
            failed=list(found.failed),
            skipped=list(found.skipped),
            seconds=time.perf_counter() - started,  # reading and hashing the files counts
        )
        bar = IngestProgressBar() if progress is True else None
        callback = bar if bar is not None else (progress or None)
        try:
            return self._run(
                tenant,
                found.pending,
                report,
                found.sync_scopes,
                found.protected_sources,
                callback if callable(callback) else None,
                None,
                scrub_pii,
            )
        finally:
            if bar is not None:
                bar.close()

    def _run(
        self,
        tenant: str,
        pending: list[Any],
        report: IngestReport,
        scopes: set[str],
        protected: set[str],
        progress: Callable[..., None] | None,
        cancel: threading.Event | None,
        scrub_pii: bool,
    ) -> IngestReport:
        with self._ingest_lock:
            return self._ingestor.run(
                tenant,
                pending,
                report=report,
                sync_scopes=scopes,
                protected_sources=protected,
                progress=progress,
                cancel=cancel,
                scrub_pii=scrub_pii or self.scrub_pii,
            )

    def optimize(self) -> None:
        """Build the store's vector indexes (HNSW) and vacuum deleted points, now.

        Never called automatically: qdrant-edge's optimizer blocks the whole process (it
        holds the GIL) for seconds to minutes. Without it, edge searches are exact over the
        tenant's points, which stays fast to ~100k chunks (see bench/ingest.py).
        """
        with self._ingest_lock:
            self.store.optimize()

    # --- search -------------------------------------------------------------------------------
    def search(
        self,
        tenant: str,
        query: str,
        *,
        top_k: int = 5,
        mode: SearchMode = "hybrid",
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """The tenant's chunks nearest to `query`. Scores: cosine (dense), BM25 (sparse),
        a fraction of the best in 0..1 (hybrid: `ingest.store.fusion`), so `score_threshold`
        means something different per mode."""
        check_tenant(tenant)
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}", param="mode")
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query is empty", param="query")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query is over {MAX_QUERY_CHARS} characters", param="query")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}", param="top_k")
        sparse = self.embedder.sparse_query(query) if mode != "dense" else None
        if sparse is not None and not sparse.indices:
            if mode == "sparse":
                return []  # only stop words / punctuation: nothing to match
            sparse = None
        dense = self.embedder.embed_query(query) if mode != "sparse" else None
        points = self.store.query(
            tenant,
            dense=dense,
            sparse=sparse,
            limit=top_k,
            filter=filter,
            score_threshold=score_threshold,
        )
        return [_hit(point) for point in points]

    # --- documents ----------------------------------------------------------------------------
    def list_documents(self, tenant: str) -> list[DocumentInfo]:
        """The tenant's documents, sorted by doc id."""
        return self._documents(tenant, None)

    def get_document(self, tenant: str, doc_id: str) -> DocumentInfo:
        found = self._documents(tenant, {DOC_ID: doc_id})
        if not found:
            raise DocumentNotFound(f"no document {doc_id!r}", param="doc_id")
        return found[0]

    def _documents(self, tenant: str, filter: Mapping[str, Any] | None) -> list[DocumentInfo]:
        fields = [DOC_ID, TITLE, SOURCE, CONTENT_HASH, INGESTED_AT, METADATA, CHUNK_INDEX]
        docs: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        for point in self.store.scroll(tenant, filter=filter, fields=fields):
            doc_id = str(point.payload.get(DOC_ID))
            counts[doc_id] = counts.get(doc_id, 0) + 1
            if doc_id not in docs or point.payload.get(CHUNK_INDEX) == 0:
                docs[doc_id] = point.payload
        return [
            DocumentInfo(
                doc_id=doc_id,
                title=payload.get(TITLE),
                source=payload.get(SOURCE),
                chunks=counts[doc_id],
                content_hash=str(payload.get(CONTENT_HASH)),
                ingested_at=str(payload.get(INGESTED_AT)),
                metadata=dict(payload.get(METADATA) or {}),
            )
            for doc_id, payload in sorted(docs.items())
        ]

    def delete_document(self, tenant: str, doc_id: str) -> bool:
        """Delete one document of the tenant; `DocumentNotFound` if it has none by that id."""
        with self._ingest_lock:
            if self.store.count(tenant, filter={DOC_ID: doc_id}) == 0:
                raise DocumentNotFound(f"no document {doc_id!r}", param="doc_id")
            self.store.delete_documents(tenant, [doc_id])
        return True

    def purge_tenant(self, tenant: str) -> int:
        """Delete everything the knowledge base holds for a deleted tenant: its job records
        (queued jobs never run, a running one stops) and all its points. Returns the number
        of points deleted. A tenant created later under the same id starts empty."""
        check_tenant(tenant)
        with self._jobs_lock:
            jobs = self._jobs
        if jobs is not None:
            jobs.purge(tenant)
        elif self._jobs_dir is not None:
            remove_job_records(self._jobs_dir, tenant)
        with self._ingest_lock:  # after a running ingest of the tenant has stopped
            count = self.store.count(tenant)
            self.store.delete_tenant(tenant)
        return count

    # --- jobs and lifecycle ---------------------------------------------------------------
    @property
    def jobs(self) -> JobRunner:
        """Background ingest jobs (created on first use; records under knowledge_dir/jobs)."""
        with self._jobs_lock:
            if self._closed:
                raise StoreUnavailable("the knowledge base is closed")
            if self._jobs is None:
                if self._jobs_dir is None:
                    raise InvalidInput("this knowledge base was opened without a jobs folder")
                self._jobs = JobRunner(
                    self, self._jobs_dir, scrub_pii=self.scrub_pii, **self._job_limits
                )
            return self._jobs

    def close(self) -> None:
        """Stop the job runner (the running job is interrupted), then close the store."""
        with self._jobs_lock:
            jobs, self._jobs = self._jobs, None
            self._closed = True
        if jobs is not None:
            jobs.close()
        with self._ingest_lock:
            self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hit(point: StoredPoint) -> Hit:
    payload = point.payload
    return Hit(
        id=point.id,
        doc_id=str(payload.get(DOC_ID)),
        chunk_index=int(payload.get(CHUNK_INDEX, 0)),
        title=payload.get(TITLE),
        source=payload.get(SOURCE),
        section=payload.get(SECTION),
        page=payload.get(PAGE),
        text=str(payload.get(TEXT, "")),
        score=float(point.score or 0.0),
        metadata=dict(payload.get(METADATA) or {}),
    )


def open_knowledge_base(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    embed_threads: int | None = None,
) -> KnowledgeBase:
    """The knowledge base the settings describe.

    Store: `qdrant_url` set -> that Qdrant server (or ":memory:"), else the embedded
    qdrant-edge folder `knowledge_dir/qdrant-edge/<qdrant_collection>`; a folder held by
    another process raises `StoreLocked` before the embedding model is loaded. Pass an
    `embedder` to share one loaded model between knowledge bases.
    """
    collection = settings.qdrant_collection
    if not _COLLECTION.match(collection):
        raise InvalidInput(
            "qdrant_collection must be 1-64 letters, digits, '_' or '-'", param="qdrant_collection"
        )
    api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    knowledge_dir = Path(settings.knowledge_dir)

    def store_for(dim: int | None) -> Store:
        return open_store(
            knowledge_dir=knowledge_dir,
            qdrant_url=settings.qdrant_url,
            collection=collection,
            dim=dim,
            qdrant_api_key=api_key,
            min_free_bytes=settings.knowledge_min_free_mb * 2**20,
        )

    store = None
    if not settings.qdrant_url and edge_store_exists(knowledge_dir, collection):
        store = store_for(None)  # fails fast with StoreLocked
    try:
        embedder = embedder or Embedder(settings.embedding_model, threads=embed_threads)
        store = store or store_for(embedder.dim)
        return KnowledgeBase(
            store,
            embedder,
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            jobs_dir=knowledge_dir / JOBS_FOLDER,
            max_queued_jobs=settings.ingest_queued_jobs_per_tenant,
            kept_jobs=settings.ingest_jobs_kept_per_tenant,
            scrub_pii=settings.ingest_scrub_pii,
        )
    except BaseException:
        if store is not None:
            store.close()
        raise


def open_existing_knowledge_base(
    settings: Settings, *, embedder: Embedder | None = None
) -> KnowledgeBase | None:
    """The knowledge base if there is one (a Qdrant URL is set, or the edge folder exists),
    else None; `StoreLocked` at once if a running server holds the edge folder."""
    if not settings.qdrant_url and not edge_store_exists(
        Path(settings.knowledge_dir), settings.qdrant_collection
    ):
        return None
    return open_knowledge_base(settings, embedder=embedder)
