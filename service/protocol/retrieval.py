"""A mode's retrieval settings (stored with the mode in the registry) and what a response
reports about retrieval."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Citation", "RetrievalReport", "RetrievalSettings"]


class RetrievalSettings(BaseModel):
    """Retrieval of a mode. A mode with these settings is RAG (base) or hybrid (adapter)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    top_k: int = Field(4, ge=1, le=50, description="Chunks retrieved.")
    score_threshold: float | None = Field(None, description="Drop hits scoring below this.")
    search: Literal["hybrid", "dense", "sparse"] = "hybrid"
    filter: dict[str, Any] | None = Field(None, description="Exact-match payload filter.")
    allow_request_override: bool = Field(
        True, description="Requests may narrow retrieval with the `lorag.retrieval` field."
    )
    on_store_error: Literal["fail", "answer"] = Field(
        "answer", description="Store down: fail with 503, or answer without context."
    )
    two_stage: bool = Field(False, description="Draft, retrieve again with the draft, answer.")
    template: str = Field("v1", description="Prompt template version (service/prompting.py).")
    instructions: str | None = Field(None, description="Replaces the template's instructions.")
    reserve_tokens: int = Field(
        256, ge=1, description="Answer tokens kept free when the request sets no max_tokens."
    )


class Citation(BaseModel):
    index: int
    doc_id: str
    title: str | None
    source: str | None
    chunk_index: int
    text: str
    score: float
    cited: bool = Field(description="The answer refers to it as [index].")


class RetrievalReport(BaseModel):
    status: Literal["ok", "no_results", "store_unavailable"]
    query: str
    template: str
    citations: list[Citation]
    dropped_for_budget: int = 0
    stages: int = 1
    draft: str | None = None
    message: str | None = None
    seconds: float = Field(0.0, description="Time spent retrieving and assembling context.")
