"""What a response reports about retrieval; a mode's retrieval settings (stored with the mode
in the registry) are `lorag.retrieval_policy.RetrievalSettings`, re-exported here."""

from __future__ import annotations

from typing import Any, Literal

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
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="How the sources were chosen: the mode's settings, narrowed by the request.",
    )
    citations: list[Citation]
    dropped_for_budget: int = 0
    below_cutoff: int = Field(0, description="Hits dropped for scoring far below the best.")
    collapsed: int = Field(
        0, description="Hits dropped as another document's copy of a better one's section."
    )
    entities: list[str] = Field(
        default_factory=list, description="Document titles the question names."
    )
    comparison: bool = Field(False, description="The question compares (nothing collapsed).")
    degenerate: str | None = Field(
        None, description="Why the answer says nothing (only citation markers, the source list)."
    )
    retried: bool = Field(False, description="Asked again with stricter instructions.")
    stages: int = 1
    draft: str | None = None
    message: str | None = None
    seconds: float = Field(0.0, description="Time spent retrieving and assembling context.")
