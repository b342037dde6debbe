"""Pure logic of retrieval: narrowing, queries, the token budget, the store-down policy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from lorag.prompting import cited_numbers, with_context
from lorag.retrieval_policy import RetrievalOverride, mode_settings, narrowed
from service.errors import InvalidRequest, StoreUnavailable
from service.retrieval import Retriever, query_of


@dataclass
class FakeHit:
    doc_id: str
    text: str
    chunk_index: int = 0
    title: str | None = None
    source: str | None = None
    score: float = 1.0


@pytest.fixture(scope="module")
def tokenizer(base_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir)


def test_requests_narrow_but_never_widen() -> None:
    settings = mode_settings({"top_k": 4, "filter": {"lang": "en"}, "score_threshold": 0.2})
    assert settings is not None
    assert narrowed(settings, RetrievalOverride(top_k=9)).top_k == 4
    assert narrowed(settings, RetrievalOverride(top_k=2)).top_k == 2
    assert narrowed(settings, RetrievalOverride(score_threshold=0.1)).score_threshold == 0.2
    merged = narrowed(settings, RetrievalOverride(filter={"doc_id": "x"})).filter
    assert merged == {"doc_id": "x", "lang": "en"}
    with pytest.raises(InvalidRequest):
        narrowed(settings, RetrievalOverride(filter={"lang": "de"}))
    strict = settings.model_copy(update={"allow_request_override": False})
    with pytest.raises(InvalidRequest) as caught:
        narrowed(strict, RetrievalOverride(top_k=1))
    assert caught.value.param == "lorag.retrieval"


def test_mode_settings_validate_and_off() -> None:
    assert mode_settings({}) is None
    assert mode_settings({"enabled": False, "top_k": 3}) is None
    with pytest.raises(InvalidRequest) as caught:
        mode_settings({"top_k": 0})
    assert caught.value.param == "retrieval.top_k"
    with pytest.raises(InvalidRequest):
        mode_settings({"topk": 3})


def test_query_uses_the_previous_user_turn() -> None:
    messages = [
        {"role": "user", "content": "Tell me about the Zorblax 9000."},
        {"role": "assistant", "content": "It is a grinder."},
        {"role": "user", "content": "And its weight?"},
    ]
    assert query_of(messages) == "Tell me about the Zorblax 9000. And its weight?"
    with pytest.raises(InvalidRequest):
        query_of([{"role": "system", "content": "x"}])


def test_budget_keeps_the_strongest_whole_chunks(tokenizer) -> None:
    hits = [FakeHit(f"d{i}", f"chunk {i} " + "word " * 120, score=1 - i / 100) for i in range(50)]
    messages = [{"role": "user", "content": "question?"}]
    assembled = with_context(
        messages,
        hits,
        tokenizer=tokenizer,
        template_version="v1",
        instructions=None,
        budget_tokens=1000,
    )
    assert 0 < len(assembled.kept) < 50
    assert assembled.kept == hits[: len(assembled.kept)]  # the weakest were dropped
    assert assembled.prompt_tokens <= 1000
    content = assembled.messages[-1]["content"]
    assert content.endswith("Question: question?")
    for index, hit in enumerate(assembled.kept, start=1):
        assert f"[{index}] d{index - 1}: {' '.join(hit.text.split())}" in content  # whole
    exact = tokenizer.apply_chat_template(
        assembled.messages, tokenize=True, add_generation_prompt=True
    )
    exact = exact["input_ids"] if hasattr(exact, "keys") else exact
    assert len(exact) == assembled.prompt_tokens


def test_cited_numbers() -> None:
    assert cited_numbers("It weighs 4 kg [1], made in X [3][1].") == {1, 3}


def test_store_down_policy(tokenizer) -> None:
    async def down():
        raise StoreUnavailable("the knowledge base is unavailable: test")

    retriever = Retriever(down, lambda: tokenizer, 2048)
    messages = [{"role": "user", "content": "question?"}]
    answer_anyway = mode_settings({"on_store_error": "answer"})
    augmented = asyncio.run(retriever.augment("t", answer_anyway, messages, 64))
    assert augmented.status == "store_unavailable"
    assert augmented.messages == messages
    assert augmented.report("x")["message"].startswith("the knowledge base is unavailable")
    fail = mode_settings({"on_store_error": "fail"})
    with pytest.raises(StoreUnavailable):
        asyncio.run(retriever.augment("t", fail, messages, 64))


def test_two_stage_prompt_carries_the_draft_to_revise(tokenizer) -> None:
    """The draft sits after the instructions, its citations removed (they numbered the first
    stage's sources), and counts against the budget like the sources."""
    hits = [FakeHit(f"d{i}", f"chunk {i} " + "word " * 60, score=1 - i / 100) for i in range(8)]
    messages = [{"role": "user", "content": "How long is the warranty?"}]
    draft = "The warranty lasts 12 months [2]."
    options = {"tokenizer": tokenizer, "template_version": "v2", "instructions": None}
    plain = with_context(messages, hits, budget_tokens=600, **options)
    revised = with_context(messages, hits, budget_tokens=600, draft=draft, **options)
    content = revised.messages[-1]["content"]
    instructions, _, rest = content.partition("A first draft of the answer, which may be wrong: ")
    assert instructions.rstrip().endswith("Cite sources like [1].")
    assert rest.startswith("The warranty lasts 12 months.\nCheck the draft against the sources")
    assert content.endswith("Question: How long is the warranty?")
    assert "[2]." not in rest
    assert revised.prompt_tokens <= 600 and len(revised.kept) <= len(plain.kept)
    assert "draft" not in plain.messages[-1]["content"]
    own = with_context(
        messages, hits, budget_tokens=600, draft=draft, **options | {"instructions": "Be brief."}
    )
    assert "Be brief.\n\nA first draft of the answer" in own.messages[-1]["content"]
