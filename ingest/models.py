"""Data types of the knowledge base: documents in, chunks, search hits, reports and jobs out.

Plain frozen dataclasses with no behaviour beyond validation and `to_dict()`; the logic
lives in `chunking`, `pipeline`, `knowledge` and `jobs`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

from ingest.errors import InvalidDocument, InvalidTenant
from lorag.names import TENANT_ID_PATTERN, TENANT_ID_RULE, is_tenant_id

__all__ = [
    "MAX_DOC_ID_CHARS",
    "TENANT_PATTERN",
    "Block",
    "Chunk",
    "DocumentInfo",
    "Hit",
    "IngestReport",
    "Job",
    "JobStatus",
    "ProgressEvent",
    "SearchMode",
    "SourceDocument",
    "TextFormat",
    "check_doc_id",
    "check_tenant",
]

TENANT_PATTERN = TENANT_ID_PATTERN  # the registry's rule (`lorag.names`)
MAX_DOC_ID_CHARS = 512
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

SearchMode = Literal["hybrid", "dense", "sparse"]
TextFormat = Literal["text", "markdown"]


def check_tenant(tenant: str) -> str:
    """Return `tenant` if it is a valid tenant id, else raise `InvalidTenant`."""
    if not is_tenant_id(tenant):
        raise InvalidTenant(
            f"invalid tenant id {tenant!r}: expected {TENANT_ID_RULE}", param="tenant"
        )
    return tenant


def check_doc_id(doc_id: str) -> str:
    """Return `doc_id` if it is a usable document id, else raise `InvalidDocument`."""
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise InvalidDocument("document id is empty", param="doc_id")
    if len(doc_id) > MAX_DOC_ID_CHARS or _CONTROL_CHARS.search(doc_id):
        raise InvalidDocument(
            f"document id must be at most {MAX_DOC_ID_CHARS} printable characters", param="doc_id"
        )
    return doc_id


@dataclass(frozen=True, slots=True)
class Block:
    """One structural piece of a document: a heading (level 1-6) or a paragraph (level 0)."""

    text: str
    heading_level: int = 0
    page: int | None = None


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """A document to ingest. `blocks` (from a loader) wins over `text` when given.

    `text` is read as markdown (`#` headings, blank-line paragraphs) or plain text per
    `format`. `content_hash` identifies the content: loaders set the hash of the file's bytes;
    if left empty it is the hash of text, title and metadata.
    """

    doc_id: str
    text: str = ""
    title: str | None = None
    source: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    format: TextFormat = "markdown"
    blocks: tuple[Block, ...] | None = None
    content_hash: str | None = None

    def __post_init__(self) -> None:
        check_doc_id(self.doc_id)
        if not isinstance(self.metadata, Mapping):
            raise InvalidDocument("metadata must be an object", param="metadata")
        try:
            json.dumps(dict(self.metadata))
        except (TypeError, ValueError) as exc:
            raise InvalidDocument(f"metadata is not JSON: {exc}", param="metadata") from None
        if self.content_hash is None:
            object.__setattr__(self, "content_hash", self._hash())

    def _hash(self) -> str:
        body = self.text if self.blocks is None else [asdict(b) for b in self.blocks]
        canonical = json.dumps(
            [body, self.title, dict(self.metadata), self.format], sort_keys=True, default=str
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document sized for the embedding model, with its section heading."""

    index: int
    text: str
    section: str | None
    page: int | None
    tokens: int
    embed_text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a chunk of a document and its score (cosine, BM25, or in hybrid
    search the fused relative score, 0..1)."""

    id: str
    doc_id: str
    chunk_index: int
    title: str | None
    source: str | None
    section: str | None
    page: int | None
    text: str
    score: float
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What the knowledge base holds for one document of a tenant."""

    doc_id: str
    title: str | None
    source: str | None
    chunks: int
    content_hash: str
    ingested_at: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class IngestReport:
    """Outcome of one ingest: document ids by outcome, failures with reasons, totals.

    `failed` and `skipped` hold (file or document, reason); `interrupted` is set when the
    ingest was cancelled part way (no sync deletions happen then). `scrubbed` is None when
    personal data was not scrubbed, else the placeholders put in by kind (`{"email": 3}`;
    `{}`: scrubbing was on and found nothing) in the documents written, not the unchanged.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    scrubbed: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = [list(item) for item in self.failed]
        data["skipped"] = [list(item) for item in self.skipped]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestReport:
        return cls(
            added=list(data.get("added", [])),
            updated=list(data.get("updated", [])),
            unchanged=list(data.get("unchanged", [])),
            deleted=list(data.get("deleted", [])),
            failed=[(str(a), str(b)) for a, b in data.get("failed", [])],
            skipped=[(str(a), str(b)) for a, b in data.get("skipped", [])],
            chunks=int(data.get("chunks", 0)),
            seconds=float(data.get("seconds", 0.0)),
            interrupted=bool(data.get("interrupted", False)),
            scrubbed=_counts(data.get("scrubbed")),
        )


def _counts(data: Any) -> dict[str, int] | None:
    """Counts by kind from a report's JSON; None (not scrubbed) in records from before."""
    if not isinstance(data, Mapping):
        return None
    return {str(kind): int(count) for kind, count in data.items()}


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Sent to a progress callback after each document: how far an ingest has come."""

    documents_done: int
    documents_total: int
    chunks_done: int
    current: str | None = None


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(slots=True)
class Job:
    """A background ingest job of one tenant; persisted as JSON under knowledge_dir/jobs.

    `scrub_pii`: personal data is replaced by placeholders before the documents are stored
    (asked for by the job, or every job by `LORAG_INGEST_SCRUB_PII`); the report counts it."""

    id: str
    tenant: str
    status: JobStatus
    documents: int
    created_at: str
    sync_scope: str | None = None
    scrub_pii: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    report: IngestReport | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["status"] = str(self.status)
        data["report"] = self.report.to_dict() if self.report is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        report = data.get("report")
        return cls(
            id=str(data["id"]),
            tenant=str(data["tenant"]),
            status=JobStatus(data["status"]),
            documents=int(data.get("documents", 0)),
            created_at=str(data["created_at"]),
            sync_scope=data.get("sync_scope"),
            scrub_pii=bool(data.get("scrub_pii", False)),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            report=IngestReport.from_dict(report) if report else None,
            error=data.get("error"),
        )
