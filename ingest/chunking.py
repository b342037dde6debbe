"""Chunking: a document's blocks packed into chunks measured in the embedding model's tokens.

Rules, in order:
- a heading starts a new chunk (unless the chunk so far holds only headings) and becomes
  part of the section path (`Title > Section > Subsection`) of the paragraphs under it;
- paragraphs are packed whole while they fit in `chunk_tokens`;
- when a chunk is full, the next one starts with the last `chunk_overlap` tokens of it
  (whole paragraphs when they fit, else the tail of the last one, cut at a word);
- only a paragraph longer than a chunk is split, in windows with the same overlap.
The text embedded is the section path plus the chunk, so a chunk keeps its heading.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ingest.blocks import MAX_HEADING_CHARS, markdown_blocks, text_blocks
from ingest.errors import InvalidDocument, InvalidInput
from ingest.models import Block, Chunk, SourceDocument

__all__ = ["LONG_BLOCK_CHARS", "MAX_PREFIX_CHARS", "Chunker", "split_long_blocks"]

LONG_BLOCK_CHARS = 20_000
"""Paragraphs longer than this are cut at whitespace first, so tokenizing stays linear.
Headings longer than MAX_HEADING_CHARS are paragraphs."""
MAX_PREFIX_CHARS = 200
_SPACE = re.compile(r"\s")


def split_long_blocks(blocks: list[Block] | tuple[Block, ...]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        text = block.text
        if block.heading_level and len(text) > MAX_HEADING_CHARS:
            block = Block(text, 0, block.page)  # too long for a heading: a paragraph
        if block.heading_level or len(text) <= LONG_BLOCK_CHARS:
            out.append(block)
            continue
        start = 0
        while start < len(text):
            end = min(start + LONG_BLOCK_CHARS, len(text))
            if end < len(text):
                cut = text.rfind(" ", start + LONG_BLOCK_CHARS // 2, end)
                end = cut + 1 if cut > 0 else end
            piece = text[start:end].strip()
            if piece:
                out.append(Block(piece, 0, block.page))
            start = end
    return out


@dataclass
class _Draft:
    section: str | None = None
    page: int | None = None
    parts: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(self.counts)


class Chunker:
    """Splits documents into `Chunk`s with a tokenizer (thread-safe: one lock around it)."""

    def __init__(
        self, tokenizer: Any, *, chunk_tokens: int, chunk_overlap: int, max_tokens: int
    ) -> None:
        if chunk_tokens < 16:
            raise InvalidInput("chunk_tokens must be at least 16", param="chunk_tokens")
        if not 0 <= chunk_overlap <= chunk_tokens // 2:
            raise InvalidInput(
                "chunk_overlap must be between 0 and half of chunk_tokens", param="chunk_overlap"
            )
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.max_tokens = max_tokens
        self.chunk_tokens = min(chunk_tokens, max_tokens)
        self.chunk_overlap = chunk_overlap

    # --- tokenizer access -----------------------------------------------------------------
    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            encoded = self._tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        with self._lock:
            encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(pair) for pair in encoded["offset_mapping"]]

    # --- chunking ---------------------------------------------------------------------------
    def chunk(self, doc: SourceDocument) -> list[Chunk]:
        if doc.blocks is not None:
            blocks = list(doc.blocks)
        elif doc.format == "markdown":
            blocks = markdown_blocks(doc.text)
        else:
            blocks = text_blocks(doc.text)
        blocks = split_long_blocks(blocks)
        counts = self.count_tokens([b.text for b in blocks])
        chunks: list[Chunk] = []
        path: list[tuple[int, str]] = []
        draft = _Draft()
        prefix_budget: dict[str | None, tuple[str, int]] = {}

        def budget_for(section: str | None) -> tuple[str, int]:
            if section not in prefix_budget:
                prefix = _prefix(doc.title, section)
                used = self.count_tokens([prefix])[0] + 1 if prefix else 0
                budget = max(16, min(self.chunk_tokens, self.max_tokens - used))
                prefix_budget[section] = (prefix, budget)
            return prefix_budget[section]

        def emit() -> None:
            if draft.parts:
                prefix, _ = budget_for(draft.section)
                text = "\n\n".join(draft.parts)
                embed = f"{prefix}\n{text}" if prefix else text
                chunks.append(
                    Chunk(len(chunks), text, draft.section, draft.page, draft.tokens, embed)
                )

        def restart(section: str | None, page: int | None, carry: bool) -> _Draft:
            kept = self._overlap(draft) if carry else ([], [])
            return _Draft(section, page, kept[0], kept[1])

        for block, count in zip(blocks, counts, strict=True):
            if block.heading_level:
                emit()
                draft = _Draft()
                while path and path[-1][0] >= block.heading_level:
                    path.pop()
                path.append((block.heading_level, block.text))
                continue
            section = " > ".join(text for _, text in path) or None
            if not draft.parts:
                draft.section, draft.page = section, block.page
            _, budget = budget_for(section)
            if draft.tokens + count <= budget:
                draft.parts.append(block.text)
                draft.counts.append(count)
                continue
            emit()
            draft = restart(section, block.page, carry=True)
            if draft.tokens + count > budget:
                draft = _Draft(section, block.page)
            if count <= budget:
                draft.parts.append(block.text)
                draft.counts.append(count)
                continue
            for piece, piece_count in self._windows(block.text, budget):
                if draft.parts:
                    emit()
                    draft = _Draft(section, block.page)
                draft.parts.append(piece)
                draft.counts.append(piece_count)
        emit()
        if not chunks:
            raise InvalidDocument("empty document: no text besides headings")
        return chunks

    def _overlap(self, draft: _Draft) -> tuple[list[str], list[int]]:
        """The tail of a full chunk that the next chunk starts with."""
        if self.chunk_overlap == 0 or not draft.parts:
            return [], []
        parts: list[str] = []
        counts: list[int] = []
        for text, count in zip(reversed(draft.parts), reversed(draft.counts), strict=True):
            if sum(counts) + count > self.chunk_overlap:
                break
            parts.insert(0, text)
            counts.insert(0, count)
        if parts:
            return parts, counts
        last = draft.parts[-1]
        offsets = self._offsets(last)
        first = max(0, len(offsets) - self.chunk_overlap)
        start = offsets[first][0] if offsets else len(last)
        if start > 0 and not _SPACE.match(last[start - 1]):
            space = _SPACE.search(last, start)
            start = space.end() if space else len(last)
        tail = last[start:].strip()
        if not tail:
            return [], []
        return [tail], self.count_tokens([tail])

    def _windows(self, text: str, budget: int) -> list[tuple[str, int]]:
        """A paragraph longer than a chunk, cut into overlapping windows of `budget` tokens."""
        offsets = self._offsets(text)
        stride = max(1, budget - self.chunk_overlap)
        windows: list[tuple[str, int]] = []
        start = 0
        while start < len(offsets):
            end = min(start + budget, len(offsets))
            piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
            if piece:
                windows.append((piece, end - start))
            if end == len(offsets):
                break
            start += stride
        return windows


def _prefix(title: str | None, section: str | None) -> str:
    """Title and section path, the title left out when the section already starts with it."""
    title = (title or "").strip()
    if section and title:
        head = section.split(" > ")[0].strip().lower()
        if title.lower().startswith(head) or head.startswith(title.lower()):
            title = ""
    text = " > ".join(part for part in (title, section or "") if part)
    return text[:MAX_PREFIX_CHARS]
