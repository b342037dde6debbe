"""A mode's retrieval policy: its settings, how they are stored, and how a request may
narrow them (never widen them).

`RetrievalSettings` is what a mode stores (validated by `mode_settings`/`normalized` when the
mode is set), `RetrievalOverride` what one request may ask (`lorag.retrieval`), `narrowed`
the settings a search then uses. Pure code, no I/O: the registry's CLI, the admin API and
the gateway's RAG step share it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lorag.errors import InvalidFilter, InvalidRequest
from lorag.prompting import DEFAULT_TEMPLATE as TEMPLATE
from lorag.prompting import template
from lorag.search_filter import filter_conditions

__all__ = [
    "RetrievalOverride",
    "RetrievalSettings",
    "mode_settings",
    "narrowed",
    "normalized",
    "sources_budget",
]

# Defaults measured on examples/lookalike (docs/benchmarks.md, "Look-alike documents").
RELATIVE_CUTOFF: float | None = 0.5
SOURCE_ORDER: Literal["best_first", "best_last"] = "best_first"


class RetrievalSettings(BaseModel):
    """Retrieval of a mode. A mode with these settings is RAG (base) or hybrid (adapter)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    top_k: int = Field(4, ge=1, le=50, description="At most this many chunks in the prompt.")
    min_k: int = Field(
        1, ge=1, le=50, description="At least this many (when found), whatever the cut-off."
    )
    score_threshold: float | None = Field(None, description="Drop hits scoring below this.")
    relative_cutoff: float | None = Field(
        RELATIVE_CUTOFF,
        ge=0,
        le=1,
        description="Drop hits scoring below this fraction of the best hit's score.",
    )
    collapse_near_duplicates: bool = Field(
        True,
        description="Drop chunks that differ from a better one only in their values (another "
        "product's same section), unless the question compares.",
    )
    source_order: Literal["best_first", "best_last"] = Field(
        SOURCE_ORDER, description="Sources listed best first, or best last (by the question)."
    )
    search: Literal["hybrid", "dense", "sparse"] = "hybrid"
    filter: dict[str, Any] | None = Field(None, description="Exact-match payload filter.")
    allow_request_override: bool = Field(
        True, description="Requests may narrow retrieval with the `lorag.retrieval` field."
    )
    on_store_error: Literal["fail", "answer"] = Field(
        "answer", description="Store down: fail with 503, or answer without context."
    )
    two_stage: bool = Field(False, description="Draft, retrieve again with the draft, answer.")
    revise_draft: bool = Field(
        True,
        description="Two-stage: the final prompt carries the draft for the model to check "
        "against the sources and correct (false: the draft only widens the second search).",
    )
    template: str = Field(TEMPLATE, description="Prompt template version (lorag/prompting.py).")
    instructions: str | None = Field(None, description="Replaces the template's instructions.")
    reserve_tokens: int = Field(
        256, ge=1, description="Answer tokens kept free when the request sets no max_tokens."
    )
    not_found_answer: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Answered without the model when no source is found (nothing, or nothing "
        "above score_threshold), instead of letting it guess; None: the model answers.",
    )
    on_degenerate: Literal["flag", "retry"] = Field(
        "retry",
        description="An answer of only citation markers or the source list: flagged in "
        "`lorag.retrieval`, or asked once more with stricter instructions (not when streamed).",
    )

    @field_validator("template")
    @classmethod
    def _known_template(cls, version: str) -> str:
        try:
            template(version)  # an unknown one is refused when the mode is set
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None
        return version

    @model_validator(mode="after")
    def _k_range(self) -> RetrievalSettings:
        if self.min_k > self.top_k:
            message = f"retrieval.min_k: {self.min_k} is above top_k ({self.top_k})"
            raise InvalidRequest(message, param="retrieval.min_k")
        return self


class RetrievalOverride(BaseModel):
    """Narrowing of a mode's retrieval settings for one request (when the mode allows it)."""

    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = None
    filter: dict[str, Any] | None = None
    search: Literal["hybrid", "dense", "sparse"] | None = None
    # How the mode's sources are chosen and shown; none of these adds a source the mode's
    # top_k, threshold and filter would not give (`lorag eval answers --sweep` tries them).
    relative_cutoff: float | None = Field(None, ge=0, le=1)
    min_k: int | None = Field(None, ge=1, le=50)
    collapse_near_duplicates: bool | None = None
    source_order: Literal["best_first", "best_last"] | None = None
    template: str | None = None
    on_degenerate: Literal["flag", "retry"] | None = None


def mode_settings(raw: dict[str, Any] | None) -> RetrievalSettings | None:
    """A mode's stored retrieval dict -> settings, or None when retrieval is off."""
    if not raw:
        return None
    try:
        settings = RetrievalSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidRequest):  # a check across fields names its own field
            raise InvalidRequest(cause.message, param=cause.param) from None
        param = "retrieval." + ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from None
    _check_filter(settings.filter, "retrieval.filter")
    return settings if settings.enabled else None


def _check_filter(filter: dict[str, Any] | None, param: str) -> None:
    """A filter the store would refuse is refused now (a mode's when it is set), naming
    `param`, not first when a request searches with it."""
    try:
        filter_conditions(filter)
    except InvalidFilter as exc:
        raise InvalidRequest(f"{param}: {exc.message}", param=param) from None


def normalized(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Retrieval settings as stored with a mode: validated, defaults filled in; {} = off;
    None = leave the mode's current settings as they are."""
    if raw is None:
        return None
    settings = mode_settings(raw)
    return settings.model_dump() if settings is not None else {}


def narrowed(settings: RetrievalSettings, override: RetrievalOverride | None) -> RetrievalSettings:
    """The mode's settings narrowed by a request: fewer hits, a higher threshold or cut-off,
    a filter added to the mode's; how sources are chosen and shown (min_k up to top_k,
    collapse, order, template) as the request says. The search kind may change only where
    the mode sets no threshold: scores are cosine (dense), BM25 (sparse) or fused shares of
    the best (hybrid), so the mode's threshold means something only in its own search."""
    if override is None:
        return settings
    if not settings.allow_request_override:
        raise InvalidRequest(
            "this mode does not let requests change retrieval", param="lorag.retrieval"
        )
    changes: dict[str, Any] = {}
    if override.top_k is not None:
        changes["top_k"] = min(override.top_k, settings.top_k)
    if override.score_threshold is not None:
        current = settings.score_threshold
        changes["score_threshold"] = (
            override.score_threshold if current is None else max(current, override.score_threshold)
        )
    if override.filter:
        _check_filter(override.filter, "lorag.retrieval.filter")
        mode_filter = settings.filter or {}
        clash = [k for k, v in override.filter.items() if k in mode_filter and mode_filter[k] != v]
        if clash:
            raise InvalidRequest(
                f"the mode fixes {', '.join(clash)}; a request cannot change it",
                param="lorag.retrieval.filter",
            )
        changes["filter"] = {**override.filter, **mode_filter}
    if override.relative_cutoff is not None:
        current_cutoff = settings.relative_cutoff
        changes["relative_cutoff"] = max(current_cutoff or 0.0, override.relative_cutoff)
    for name in ("min_k", "collapse_near_duplicates", "source_order", "on_degenerate"):
        if getattr(override, name) is not None:
            changes[name] = getattr(override, name)
    if override.template is not None:
        try:
            template(override.template)
        except InvalidRequest as exc:
            raise InvalidRequest(exc.message, param="lorag.retrieval.template") from None
        changes["template"] = override.template
    if override.search is not None and override.search != settings.search:
        if settings.score_threshold is not None:
            raise InvalidRequest(
                f"this mode's score_threshold is measured in {settings.search} search; a "
                "request cannot change the search",
                param="lorag.retrieval.search",
            )
        changes["search"] = override.search
    top_k = changes.get("top_k", settings.top_k)
    changes["min_k"] = min(changes.get("min_k", settings.min_k), top_k)
    return settings.model_copy(update=changes)


def sources_budget(max_model_len: int, settings: RetrievalSettings, max_tokens: int | None) -> int:
    """The tokens the whole prompt (sources, question, chat template) may take: the served
    context less the answer's room (the request's max_tokens, else the mode's reserve). The
    gateway assembles every RAG prompt within it; `lorag train build-raft` builds RAFT examples
    within the same, so an adapter trains on the prompts it will be served."""
    return max_model_len - (max_tokens or settings.reserve_tokens)
