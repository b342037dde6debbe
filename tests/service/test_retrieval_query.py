"""A long RAG question is answered: the retrieval query is cut to what the search accepts
(real knowledge base, real embedding model, real tokenizer)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.embedding import Embedder
from ingest.errors import InvalidInput
from ingest.knowledge import MAX_QUERY_CHARS, KnowledgeBase, open_knowledge_base
from ingest.models import SourceDocument
from lorag.retrieval_policy import mode_settings
from lorag.settings import Settings
from service.retrieval import Retriever, search_query


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    knowledge = open_knowledge_base(settings, embedder=Embedder(None, threads=1))
    knowledge.ingest_documents(
        "acme",
        [
            SourceDocument("zorblax", "The Zorblax 9000 grinder weighs 4 kg."),
            SourceDocument("alpaca", "Alpacas are kept for their soft wool."),
        ],
    )
    yield knowledge
    knowledge.close()


@pytest.fixture(scope="module")
def tokenizer(base_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir)


def test_search_query_keeps_both_ends_within_the_limit() -> None:
    assert search_query("short question?") == "short question?"
    text = "How heavy is the Zorblax? " + "filler " * 2000 + "Answer in kilograms."
    cut = search_query(text)
    assert len(cut) <= MAX_QUERY_CHARS
    assert cut.startswith("How heavy is the Zorblax? ") and cut.endswith("Answer in kilograms.")
    assert len(search_query("x" * 10_000)) <= MAX_QUERY_CHARS  # no spaces to cut at


def test_a_question_over_the_search_limit_is_answered(kb: KnowledgeBase, tokenizer) -> None:
    question = "How much does the Zorblax 9000 weigh? " + "Please be precise. " * 300
    assert len(question) > MAX_QUERY_CHARS
    with pytest.raises(InvalidInput):  # the explicit search still refuses it (a clear 400)
        kb.search("acme", question)

    async def knowledge() -> KnowledgeBase:
        return kb

    retriever = Retriever(knowledge, lambda: tokenizer, 2048)
    messages = [
        {"role": "user", "content": "Earlier question. " * 20},
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": question},
    ]
    augmented = asyncio.run(retriever.augment("acme", mode_settings({"top_k": 1}), messages, 64))
    assert augmented.status == "ok"
    assert [hit.doc_id for hit in augmented.kept] == ["zorblax"]
    assert "Zorblax 9000 grinder weighs 4 kg" in augmented.messages[-1]["content"]
