"""Bodies of the knowledge-base API (`/v1/knowledge/...`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentIn(_Strict):
    doc_id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1)
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    format: Literal["text", "markdown"] = "markdown"


class IngestRequest(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)
    sync_scope: str | None = Field(
        None, description="These documents are the whole scope: others recorded in it go."
    )


class SearchRequest(_Strict):
    query: str = Field(min_length=1)
    top_k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    filter: dict[str, Any] | None = None
    score_threshold: float | None = None
