"""Chunking with the embedding model's real tokenizer: headings kept with their paragraphs,
paragraphs whole unless longer than a chunk, overlap, token limits, pages."""

from __future__ import annotations

import itertools
import time

import pytest

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.errors import InvalidDocument, InvalidInput
from ingest.models import Block, SourceDocument

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def sentence(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 5) % len(WORDS)] for i in range(words)) + "."


@pytest.fixture(scope="module")
def chunker_factory(embedder: Embedder):
    tokenizer = embedder.new_tokenizer()

    def make(chunk_tokens: int = 100, chunk_overlap: int = 20) -> Chunker:
        return Chunker(
            tokenizer,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            max_tokens=embedder.max_tokens,
        )

    return make


def test_headings_stay_with_their_paragraphs(chunker_factory) -> None:
    text = (
        "# Guide\n\nIntro paragraph.\n\n## Install\n\nRun the installer.\n\nReboot after it."
        "\n\n## Usage\n\nOpen the app.\n\n### Tips\n\nUse shortcuts."
    )
    chunks = chunker_factory().chunk(SourceDocument("g", text, title="Guide"))
    assert [(c.section, c.text) for c in chunks] == [
        ("Guide", "Intro paragraph."),
        ("Guide > Install", "Run the installer.\n\nReboot after it."),
        ("Guide > Usage", "Open the app."),
        ("Guide > Usage > Tips", "Use shortcuts."),
    ]
    # the heading path is embedded with the chunk (title left out: the path starts with it)
    assert chunks[1].embed_text == "Guide > Install\nRun the installer.\n\nReboot after it."
    assert [c.index for c in chunks] == [0, 1, 2, 3]


def test_paragraphs_are_packed_whole_within_the_budget(chunker_factory) -> None:
    chunker = chunker_factory(chunk_tokens=100, chunk_overlap=0)
    paragraphs = [sentence(i, 25) for i in range(12)]
    chunks = chunker.chunk(SourceDocument("p", "\n\n".join(paragraphs), format="text"))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunker.count_tokens([chunk.text])[0] <= 100  # recounted, not the chunker's sum
        assert all(part in paragraphs for part in chunk.text.split("\n\n"))
    assert [p for c in chunks for p in c.text.split("\n\n")] == paragraphs


def test_next_chunk_starts_with_the_overlap(chunker_factory) -> None:
    chunker = chunker_factory(chunk_tokens=100, chunk_overlap=40)
    paragraphs = [sentence(i, 12) for i in range(15)]  # ~13-16 tokens each
    chunks = chunker.chunk(SourceDocument("o", "\n\n".join(paragraphs), format="text"))
    assert len(chunks) > 2
    for before, after in itertools.pairwise(chunks):
        head, tail = after.text.split("\n\n"), before.text.split("\n\n")
        carried = next(k for k in range(len(head), 0, -1) if head[:k] == tail[-k:])
        assert 0 < sum(chunker.count_tokens(head[:carried])) <= 40  # whole paragraphs


def test_a_paragraph_longer_than_a_chunk_is_cut_in_overlapping_windows(chunker_factory) -> None:
    chunker = chunker_factory(chunk_tokens=64, chunk_overlap=16)
    words = [f"w{i}" for i in range(600)]
    chunks = chunker.chunk(SourceDocument("long", " ".join(words), format="text"))
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunker.count_tokens([chunk.text])[0] <= 64
        assert chunker.count_tokens([chunk.embed_text])[0] <= chunker.max_tokens
    seen = [w for c in chunks for w in c.text.split()]
    assert set(words) <= set(seen)  # nothing lost
    for before, after in itertools.pairwise(chunks):
        assert set(before.text.split()[-3:]) & set(after.text.split()[:8])  # overlap


def test_pages_and_sections_from_blocks(chunker_factory) -> None:
    blocks = (
        Block("Chapter one", 1, 1),
        Block("Text on page one.", 0, 1),
        Block("Chapter two", 1, 2),
        Block("Text on page two.", 0, 2),
        Block("More on page three.", 0, 3),
    )
    chunks = chunker_factory().chunk(SourceDocument("b", blocks=blocks, title="Book"))
    assert [(c.section, c.page) for c in chunks] == [("Chapter one", 1), ("Chapter two", 2)]
    assert chunks[0].embed_text.startswith("Book > Chapter one\n")


def test_a_huge_single_line_is_chunked_in_linear_time(chunker_factory) -> None:
    chunker = chunker_factory(chunk_tokens=200, chunk_overlap=40)
    line = " ".join(f"token{i % 997}" for i in range(60_000))  # ~600 KB, one line
    started = time.perf_counter()
    chunks = chunker.chunk(SourceDocument("huge", line, format="text"))
    assert time.perf_counter() - started < 30
    assert max(chunker.count_tokens([c.text for c in chunks])) <= 200
    assert len(chunks) > 100


def test_bad_settings_and_empty_documents_are_refused(chunker_factory) -> None:
    with pytest.raises(InvalidInput):
        chunker_factory(chunk_tokens=100, chunk_overlap=60)
    with pytest.raises(InvalidInput):
        chunker_factory(chunk_tokens=8, chunk_overlap=0)
    with pytest.raises(InvalidDocument):
        chunker_factory().chunk(SourceDocument("e", "# Only a heading\n\n## And another"))
