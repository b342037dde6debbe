"""Retrieval in the serving path: query -> tenant's chunks -> prompt with numbered sources.

The query is the last user message, preceded by the previous user turn (follow-ups such as
"and its warranty?" need it). The mode's settings decide top_k, search, filter and threshold;
a request may narrow them (`lorag.retrieval`) when the mode allows it, never widen them
(`lorag.retrieval_policy`). The search returns a pool of candidates (`POOL_FACTOR` x top_k),
from which `lorag.source_selection` keeps the sources (cut-off, near-duplicates, min/max k).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ingest.knowledge import MAX_QUERY_CHARS, MAX_TOP_K, KnowledgeBase
from ingest.models import Hit
from lorag.degenerate import degenerate
from lorag.prompting import Assembled, Tokenizer, cited_numbers, label, with_context
from lorag.retrieval_policy import RetrievalSettings, sources_budget
from lorag.source_selection import Selection, select
from service.errors import InvalidRequest, StoreUnavailable
from service.protocol.retrieval import Citation, RetrievalReport

__all__ = ["POOL_FACTOR", "Augmented", "Retriever", "query_of", "search_query"]

REPORTED_SETTINGS = {
    "top_k",
    "min_k",
    "search",
    "score_threshold",
    "relative_cutoff",
    "collapse_near_duplicates",
    "source_order",
    "template",
    "on_degenerate",
}
"""The settings a response reports it answered with (the mode's, narrowed by the request)."""

POOL_FACTOR = 3
"""Candidates searched per source kept: room for near-duplicates and the cut-off to drop."""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def query_of(messages: list[dict[str, Any]]) -> str:
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    users = [u for u in users if u.strip()]
    if not users:
        raise InvalidRequest("retrieval needs a user message", param="messages")
    return " ".join(users[-2:])


def search_query(text: str, limit: int = MAX_QUERY_CHARS) -> str:
    """`text` cut to the `limit` characters the search accepts: its start and its end, cut
    at spaces. A long message often asks at the start or at the end; the embedding model
    reads only its first ~256 tokens anyway, keyword search the words of both ends."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    head, tail = text[:half], text[-half:]
    head = head[: head.rfind(" ")] if " " in head else head
    tail = tail[tail.find(" ") + 1 :] if " " in tail else tail
    return f"{head} {tail}"


def _dedupe(hits: list[Hit]) -> list[Hit]:
    seen: set[tuple[str, int]] = set()
    texts: set[str] = set()
    unique = []
    for hit in hits:
        key = (hit.doc_id, hit.chunk_index)
        text = " ".join(hit.text.split())
        if key in seen or text in texts:
            continue
        seen.add(key)
        texts.add(text)
        unique.append(hit)
    return unique


@dataclass
class Augmented:
    """A request's messages with context, and what to report about it."""

    messages: list[dict[str, Any]]
    settings: RetrievalSettings
    query: str
    status: str
    kept: list[Hit]
    dropped: int = 0
    stages: int = 1
    draft: str | None = None
    message: str | None = None
    seconds: float = 0.0
    selection: Selection | None = None
    asked: list[dict[str, Any]] | None = None  # the messages as the client sent them
    retried: bool = False  # asked again with the template's strict instructions

    def check(self, answer: str) -> str | None:
        """Why `answer` is degenerate (`lorag.degenerate`), or None (also without sources)."""
        if not self.kept:
            return None
        labels = [text for hit in self.kept for text in (label(hit), hit.title or "")]
        return degenerate(answer, labels)

    def report(self, answer: str) -> dict[str, Any]:
        numbers = cited_numbers(answer)
        citations = [
            Citation(
                index=i,
                doc_id=hit.doc_id,
                title=hit.title,
                source=hit.source,
                chunk_index=hit.chunk_index,
                section=hit.section,
                page=hit.page,
                text=hit.text,
                score=hit.score,
                cited=i in numbers,
            )
            for i, hit in enumerate(self.kept, start=1)
        ]
        return RetrievalReport(
            status=self.status,
            query=self.query,
            template=self.settings.template,
            settings=self.settings.model_dump(include=REPORTED_SETTINGS),
            citations=citations,
            dropped_for_budget=self.dropped,
            below_cutoff=self.selection.below_cutoff if self.selection else 0,
            collapsed=self.selection.collapsed if self.selection else 0,
            entities=self.selection.entities if self.selection else [],
            comparison=self.selection.comparison if self.selection else False,
            degenerate=self.check(answer),
            retried=self.retried,
            stages=self.stages,
            draft=self.draft,
            message=self.message,
            seconds=round(self.seconds, 4),
        ).model_dump()


class Retriever:
    """Searches a tenant's knowledge and builds the prompt with it.

    Its blocking calls (embedding and search, the tokenizer, the prompt's budget) run through
    `off_loop`: the app passes its retrieval pool (`service.executors`), of threads no upload
    or delete can take; by default asyncio's shared pool (`asyncio.to_thread`)."""

    def __init__(
        self,
        knowledge: Callable[[], Awaitable[KnowledgeBase]],
        tokenizer: Callable[[], Tokenizer],
        max_model_len: int,
        off_loop: Callable[..., Awaitable[Any]] = asyncio.to_thread,
    ):
        self.knowledge = knowledge
        self.tokenizer = tokenizer  # loads once, on first use
        self.max_model_len = max_model_len
        self.off_loop = off_loop

    async def search(self, tenant: str, query: str, settings: RetrievalSettings) -> list[Hit]:
        knowledge = await self.knowledge()
        try:
            hits: list[Hit] = await self.off_loop(
                knowledge.search,
                tenant,
                query,
                top_k=min(MAX_TOP_K, settings.top_k * POOL_FACTOR),
                mode=settings.search,
                filter=settings.filter,
                score_threshold=settings.score_threshold,
            )
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"the knowledge base does not answer: {exc}") from exc
        return hits

    async def augment(
        self,
        tenant: str,
        settings: RetrievalSettings,
        messages: list[dict[str, Any]],
        max_tokens: int | None,
        *,
        extra_query: str = "",
        previous: list[Hit] | None = None,
        draft: str | None = None,
    ) -> Augmented:
        """`messages` with the sources chosen for them (and `draft` to revise, if given)."""
        query = query_of(messages)
        search_text = search_query(f"{query} {extra_query}")  # the search refuses long ones
        try:
            hits = await self.search(tenant, search_text, settings)
        except StoreUnavailable as exc:
            if settings.on_store_error == "fail":
                raise
            return Augmented(
                messages=messages,
                settings=settings,
                query=query,
                status="store_unavailable",
                kept=[],
                message=exc.message,
            )
        selection: Selection = await self.off_loop(  # compares chunks: off the loop
            functools.partial(
                select,
                _dedupe([*(previous or []), *hits]),
                query,
                max_k=settings.top_k,
                min_k=settings.min_k,
                cutoff=settings.relative_cutoff,
                collapse=settings.collapse_near_duplicates,
            )
        )
        if not selection.kept:
            return Augmented(
                messages=messages, settings=settings, query=query, status="no_results", kept=[]
            )
        return await self.assemble(settings, messages, query, selection, max_tokens, draft=draft)

    async def assemble(
        self,
        settings: RetrievalSettings,
        messages: list[dict[str, Any]],
        query: str,
        selection: Selection,
        max_tokens: int | None,
        *,
        strict: bool = False,
        draft: str | None = None,
    ) -> Augmented:
        """`messages` with the chosen sources in the prompt (`strict`: the template's
        stricter instructions, to ask again after a degenerate answer, with the same
        sources)."""
        tokenizer = await self.off_loop(self.tokenizer)
        assembled: Assembled = await self.off_loop(
            functools.partial(
                with_context,
                messages,
                selection.kept,
                tokenizer=tokenizer,
                template_version=settings.template,
                instructions=settings.instructions,
                budget_tokens=sources_budget(self.max_model_len, settings, max_tokens),
                entities=selection.entities,
                best_last=settings.source_order == "best_last",
                strict=strict,
                draft=draft,
            )
        )
        return Augmented(
            messages=assembled.messages,
            settings=settings,
            query=query,
            status="ok",
            kept=assembled.kept,  # the hits given, in prompt order
            dropped=assembled.dropped,
            selection=selection,
            asked=messages,
        )
