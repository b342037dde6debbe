"""Bodies of the knowledge-base API (`/v1/knowledge/...`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BlockIn", "DocumentIn", "IngestRequest", "SearchRequest"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BlockIn(_Strict):
    text: str
    heading_level: int = Field(0, ge=0, le=6)
    page: int | None = None


class DocumentIn(_Strict):
    doc_id: str = Field(min_length=1, max_length=512)
    text: str = ""
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    format: Literal["text", "markdown"] = "markdown"
    blocks: list[BlockIn] | None = Field(
        None, description="Parsed structure (headings, paragraphs, pages); wins over text."
    )
    content_hash: str | None = Field(None, description="Identity of the content (default: hash).")
    scope: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Where the document came from (e.g. a folder): a later ingest with this "
        "sync_scope deletes it once it is not among that ingest's documents.",
    )

    @model_validator(mode="after")
    def _has_content(self) -> DocumentIn:
        if not self.text.strip() and not self.blocks:
            raise ValueError("a document needs text or blocks")
        return self


class IngestRequest(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)
    sync_scope: str | None = Field(
        None, description="These documents are the whole scope: others recorded in it go."
    )
    scrub_pii: bool = Field(
        False,
        description="Replace emails, phone numbers, card numbers and IBANs with placeholders "
        "before the documents are stored; the job's report counts them. Always on where the "
        "server sets LORAG_INGEST_SCRUB_PII.",
    )


class SearchRequest(_Strict):
    query: str = Field(min_length=1)
    top_k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    filter: dict[str, Any] | None = None
    score_threshold: float | None = None
