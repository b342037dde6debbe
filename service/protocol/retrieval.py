"""What a response reports about retrieval; a mode's retrieval settings (stored with the mode
in the registry) are `lorag.retrieval_policy.RetrievalSettings`, re-exported here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from lorag.retrieval_policy import RetrievalSettings

__all__ = ["Citation", "RetrievalReport", "RetrievalSettings"]


class Citation(BaseModel):
    index: int
    doc_id: str
    title: str | None
    source: str | None
    chunk_index: int
    section: str | None = Field(
        None, description="The heading path above the chunk (`Title > Section`), if any."
    )
    page: int | None = Field(None, description="The page the chunk starts on (PDFs), if any.")
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
