"""Retrieval in the serving path against a fake vLLM: the real knowledge base (embedded
qdrant-edge, MiniLM) feeds numbered sources into the prompt the engine receives, and the
response reports them as citations. `test_retrieval.py` checks answers with the real model."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BASE_NAME
from tests.service.fake_vllm import (
    FakeVLLM,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    reply_text,
    set_mode,
    sse_data,
    tiny_adapter,
)

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
QUESTION = "How much does the Zorblax 9000 weigh?"
DOCS = [
    {
        "doc_id": "zorblax-sheet",
        "title": "Zorblax 9000 product sheet",
        "text": "The Zorblax 9000 is a coffee grinder made by Quenta Labs. It weighs 4471 grams.",
    },
    {
        "doc_id": "quenta-about",
        "title": "About Quenta Labs",
        "text": "Quenta Labs is a small company in Oslo that designs kitchen tools.",
    },
    {
        "doc_id": "tea-guide",
        "title": "Brewing green tea",
        "text": "Green tea should steep for two minutes in water at eighty degrees.",
    },
]
PINNED = {"top_k": 2, "template": "v1", "relative_cutoff": None, "on_degenerate": "flag"}
"""Both hits reach the prompt as one line each (the numbering and budget under test), and the
fake's answer (it repeats the prompt, source list included) is returned as it is; the
defaults: tests/service/test_lookalike.py, and the retry below."""
SOURCE_LINE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


@dataclass
class KB:
    client: httpx.AsyncClient
    key: str  # tenant kb-a: holds DOCS
    other_key: str  # tenant kb-b: same modes, no documents

    async def chat(self, model: str, *, key: str | None = None, **extra: object):
        body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], **extra}
        headers = {"authorization": f"Bearer {key or self.key}"}
        return await self.client.post(CHAT, json=body, headers=headers)


@pytest.fixture
def fake(fake_server: FakeVLLM) -> FakeVLLM:
    fake_server.reset(adapters=False)  # the module's gateway keeps its adapter loaded there
    return fake_server


async def ingest(client: httpx.AsyncClient, key: str, documents: list[dict]) -> dict:
    headers = {"authorization": f"Bearer {key}"}
    answer = await client.post(
        "/v1/knowledge/documents", json={"documents": documents}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = (
            await client.get(f"/v1/knowledge/jobs/{answer.json()['id']}", headers=headers)
        ).json()
        if job["status"] in ("succeeded", "failed"):
            assert job["status"] == "succeeded", job
            return job
        await asyncio.sleep(0.05)
    raise TimeoutError("ingest job")


@pytest.fixture(scope="module")
async def kb(
    fake_server: FakeVLLM, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[KB]:
    data_dir = tmp_path_factory.mktemp("fast-kb") / "data"
    settings = gateway_settings(data_dir, [fake_server.url], base_model_dir, knowledge=True)
    async with gateway_client(settings) as client:
        keys = [await create_tenant(client, tenant) for tenant in ("kb-a", "kb-b")]
        for tenant in ("kb-a", "kb-b"):
            await set_mode(client, tenant, "rag", "base", retrieval=PINNED)
            await set_mode(client, tenant, "plain", "base")
        await set_mode(
            client,
            "kb-a",
            "strict",
            "base",
            retrieval={"top_k": 2, "allow_request_override": False},
        )
        adapter = tiny_adapter(base_model_dir, data_dir.parent / "adapter")
        assert await import_adapter(client, adapter, "support") == "support@v1"
        await set_mode(
            client, "kb-a", "hybrid", "support@v1", retrieval={**PINNED, "two_stage": True}
        )
        await set_mode(
            client, "kb-a", "retry", "base", retrieval={"top_k": 2, "relative_cutoff": None}
        )
        job = await ingest(client, keys[0], DOCS)
        assert job["report"]["added"] == [d["doc_id"] for d in DOCS]
        yield KB(client, keys[0], keys[1])


def sources_in(content: str) -> dict[int, str]:
    return {int(number): line for number, line in SOURCE_LINE.findall(content)}


async def test_sources_are_numbered_in_the_prompt_and_cited(kb: KB, fake: FakeVLLM) -> None:
    answer = await kb.chat("rag", max_tokens=40)
    assert answer.status_code == 200, answer.text
    [sent] = fake.bodies(CHAT)
    assert sent["model"] == BASE_NAME
    assert "lorag" not in sent and sent["max_tokens"] == 40
    [message] = sent["messages"]
    prompt = message["content"]
    sources = sources_in(prompt)
    assert sorted(sources) == [1, 2]  # top_k 2 of 3 documents
    assert sources[1].startswith("Zorblax 9000 product sheet: ")
    assert "It weighs 4471 grams." in sources[1]
    assert "Green tea" not in prompt  # the least related document was not retrieved
    assert prompt.endswith(QUESTION)
    reply = answer.json()
    assert reply["model"] == "rag"
    assert reply["choices"][0]["message"]["content"] == reply_text(CHAT, sent)
    report = reply["lorag"]["retrieval"]
    assert report["status"] == "ok"
    assert report["query"] == QUESTION
    citations = report["citations"]
    assert [c["index"] for c in citations] == [1, 2]
    assert citations[0]["doc_id"] == "zorblax-sheet"
    assert citations[0]["title"] == "Zorblax 9000 product sheet"
    assert "4471 grams" in citations[0]["text"]
    assert citations[1]["doc_id"] == "quenta-about"
    assert all(c["text"] in sources[c["index"]] for c in citations)
    assert citations[0]["cited"] is True  # the fake's answer repeats "[1]"
    assert citations[0]["score"] >= citations[1]["score"]
    assert citations[0]["section"] is None and citations[0]["page"] is None  # plain text


async def test_stream_carries_the_citations_on_the_finish_chunk(kb: KB, fake: FakeVLLM) -> None:
    whole = (await kb.chat("rag")).json()
    answer = await kb.chat("rag", stream=True)
    assert answer.status_code == 200, answer.text
    events = sse_data(answer.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    # a client reading choices[0] of every chunk survives: no choices-less chunk
    assert all(c["choices"] and c["model"] == "rag" for c in chunks)
    extra = [c for c in chunks if "lorag" in c]
    assert len(extra) == 1 and extra[0] is chunks[-1]  # the last chunk, just before [DONE]
    assert extra[0]["choices"][0]["finish_reason"] == "stop"
    streamed = extra[0]["lorag"]["retrieval"]
    assert streamed["citations"] == whole["lorag"]["retrieval"]["citations"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    sent_whole, sent_stream = fake.bodies(CHAT)
    assert sent_stream["messages"] == sent_whole["messages"]


async def test_stream_with_usage_keeps_the_citations_on_the_finish_chunk(kb: KB) -> None:
    answer = await kb.chat("rag", stream=True, stream_options={"include_usage": True})
    assert answer.status_code == 200, answer.text
    events = sse_data(answer.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    *content, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    assert "lorag" not in usage
    assert all(c["choices"] for c in content)  # only the usage chunk has none, as at OpenAI
    assert [c for c in content if "lorag" in c] == [content[-1]]
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    assert content[-1]["lorag"]["retrieval"]["citations"][0]["doc_id"] == "zorblax-sheet"


async def test_a_request_narrows_retrieval_but_not_in_a_strict_mode(kb: KB, fake: FakeVLLM) -> None:
    narrowed = await kb.chat("rag", lorag={"retrieval": {"top_k": 1}})
    widened = await kb.chat("rag", lorag={"retrieval": {"top_k": 9}})
    strict = await kb.chat("strict", lorag={"retrieval": {"top_k": 1}})
    assert narrowed.status_code == 200, narrowed.text
    first, second = fake.bodies(CHAT)
    assert "lorag" not in first
    assert sorted(sources_in(first["messages"][-1]["content"])) == [1]
    assert [c["doc_id"] for c in narrowed.json()["lorag"]["retrieval"]["citations"]] == [
        "zorblax-sheet"
    ]
    assert sorted(sources_in(second["messages"][-1]["content"])) == [1, 2]  # never widened
    assert widened.status_code == 200
    assert strict.status_code == 400
    assert strict.json()["error"]["param"] == "lorag.retrieval"


async def test_no_context_without_retrieval_or_documents(kb: KB, fake: FakeVLLM) -> None:
    plain = await kb.chat("plain")
    empty = await kb.chat("rag", key=kb.other_key)  # kb-b has no documents
    on_completions = await kb.client.post(
        "/v1/completions",
        json={"model": "rag", "prompt": QUESTION},
        headers={"authorization": f"Bearer {kb.key}"},
    )
    assert plain.status_code == 200 and empty.status_code == 200, (plain.text, empty.text)
    untouched = [{"role": "user", "content": QUESTION}]
    assert [b["messages"] for b in fake.bodies(CHAT)] == [untouched, untouched]
    assert "lorag" not in plain.json()
    report = empty.json()["lorag"]["retrieval"]
    assert report["status"] == "no_results" and report["citations"] == []
    assert on_completions.status_code == 400
    assert on_completions.json()["error"]["param"] == "model"
    assert fake.requests("/v1/completions") == []


async def test_hybrid_two_stage_drafts_with_the_adapter_then_streams(
    kb: KB, fake: FakeVLLM
) -> None:
    answer = await kb.chat("hybrid", stream=True, max_tokens=300)
    assert answer.status_code == 200, answer.text
    draft, final = fake.bodies(CHAT)
    assert draft["model"] == final["model"] == "support@v1"
    # the draft: not streamed, short, already with the sources
    assert draft["stream"] is False and draft["max_tokens"] == 128
    assert "stream_options" not in draft
    assert sources_in(draft["messages"][-1]["content"])[1].startswith("Zorblax 9000")
    # the answer: streamed, retrieved again with the draft, the client's max_tokens
    assert final["stream"] is True and final["max_tokens"] == 300
    prompt = final["messages"][-1]["content"]
    assert sorted(sources_in(prompt)) == [1, 2] and prompt.endswith(QUESTION)
    # and the draft, to revise against the sources (its first stage's citations removed)
    drafted = " ".join(re.sub(r"\s*\[\d+\]", "", reply_text(CHAT, draft)).split())
    assert f"A first draft of the answer, which may be wrong: {drafted}\n" in prompt
    events = sse_data(answer.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["model"] for c in chunks} == {"hybrid"}
    report = chunks[-1]["lorag"]["retrieval"]
    assert report["stages"] == 2 and report["status"] == "ok"
    assert report["draft"] == reply_text(CHAT, draft)
    assert report["citations"][0]["doc_id"] == "zorblax-sheet"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == reply_text(CHAT, final)


async def test_every_answer_names_the_mode_and_adapter_version(kb: KB) -> None:
    plain = await kb.chat("plain")
    streamed = await kb.chat("hybrid", stream=True)
    whole = await kb.chat("hybrid")
    assert plain.status_code == streamed.status_code == whole.status_code == 200
    assert (plain.headers["x-lorag-mode"], plain.headers["x-lorag-adapter"]) == ("plain", "base")
    for answer in (streamed, whole):
        assert answer.headers["x-lorag-mode"] == "hybrid"
        assert answer.headers["x-lorag-adapter"] == "support@v1"
    metrics = (await kb.client.get("/metrics")).text
    assert re.search(
        r'lorag_served_total\{adapter_version="support@v1",mode="hybrid",status="200",'
        r'tenant="kb-a"\} [1-9]',
        metrics,
    )
    assert re.search(r'lorag_retrievals_total\{status="ok"\} [1-9]', metrics)


async def test_a_degenerate_answer_is_asked_again_strictly(kb: KB, fake: FakeVLLM) -> None:
    """The fake repeats the prompt, source list included: the default mode asks once more
    with the template's strict instructions and returns that answer, flagged."""
    answer = await kb.chat("retry", max_tokens=40)
    assert answer.status_code == 200, answer.text
    first, again = fake.bodies(CHAT)
    assert "Cite sources like [1]." in first["messages"][-1]["content"]
    assert "Do not list or repeat the sources." in again["messages"][-1]["content"]
    reply = answer.json()
    assert reply["choices"][0]["message"]["content"] == reply_text(CHAT, again)
    report = reply["lorag"]["retrieval"]
    assert report["retried"] is True
    assert report["degenerate"] == "repeats the source list"  # the fake repeats it again
    flagged = await kb.chat("rag", max_tokens=40)
    assert flagged.json()["lorag"]["retrieval"]["degenerate"] == "repeats the source list"
    assert flagged.json()["lorag"]["retrieval"]["retried"] is False
    assert len(fake.bodies(CHAT)) == 3  # flagged, not asked again
