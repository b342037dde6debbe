"""The gateway's relay in-process against a fake vLLM (seconds, no model): streams relayed
event by event, and every failure (bad request, engine error, engine down, slow, cut
mid-stream) mapped to OpenAI's error envelope. `test_gateway.py` checks the real engine."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.embedding import BUNDLED_MODEL_NAME
from service.engine import Engine
from service.errors import EngineUnavailable
from tests.conftest import BASE_NAME
from tests.service.fake_vllm import (
    FakeVLLM,
    Faults,
    assert_envelope,
    bearer,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    reply_text,
    set_mode,
    sse_data,
    tiny_adapter,
    words,
)

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello there, gateway."}]


def expected_chat(model: str, messages: list[dict] = HELLO) -> str:
    return reply_text(CHAT, {"model": model, "messages": messages})


# --- error mapping -------------------------------------------------------------------------
async def test_bad_request_bodies_are_400_naming_the_field(settings, fake: FakeVLLM) -> None:
    cases = [
        ({"model": BASE_NAME, "messages": []}, "messages"),
        ({"model": BASE_NAME, "messages": HELLO, "temperature": 7}, "temperature"),
        ({"messages": HELLO}, "model"),
        ({"model": BASE_NAME, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        (
            {"model": BASE_NAME, "messages": HELLO, "lorag": {"retrieval": {"top_k": 2}}},
            "lorag.retrieval",
        ),
    ]
    async with gateway_client(settings) as client:
        for body, param in cases:
            answer = await client.post(CHAT, json=body)
            error = assert_envelope(answer, 400, type="invalid_request_error", param=param)
            assert error["message"].startswith(param) or param.startswith("lorag")
        broken = await client.post(
            CHAT,
            content=b'{"model": "x", "messages": [',
            headers={"content-type": "application/json"},
        )
        not_object = await client.post(CHAT, json=[1, 2])
    assert "JSON" in assert_envelope(broken, 400, type="invalid_request_error")["message"]
    assert_envelope(not_object, 400, type="invalid_request_error")
    assert fake.requests(CHAT) == []


async def test_engine_error_status_is_relayed_in_the_envelope(settings, fake: FakeVLLM) -> None:
    async with gateway_client(settings) as client:
        fake.faults = Faults(status=500, message="EngineCore encountered an issue")
        failed = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
        streamed = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO, "stream": True}
        )
        fake.faults = Faults(status=400, message="This model's maximum context length is 2048")
        refused = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
        fake.faults = Faults()
        healed = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
        metrics = (await client.get("/metrics")).text
    error = assert_envelope(failed, 500, type="server_error")
    assert error["message"] == "EngineCore encountered an issue"
    assert assert_envelope(streamed, 500, type="server_error") == error
    assert (
        "maximum context length"
        in assert_envelope(refused, 400, type="invalid_request_error")["message"]
    )
    assert healed.status_code == 200
    assert 'lorag_requests_total{endpoint="chat",kind="base",status="500"} 2.0' in metrics
    assert 'lorag_requests_total{endpoint="chat",kind="base",status="200"} 1.0' in metrics


async def test_engine_404_for_an_adapter_never_reveals_served_names(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a"), "support")
        await set_mode(client, "acme", "support", "support@v1")
        fake.faults = Faults(status=404, message="The model `support@v1` does not exist.")
        answer = await client.post(
            CHAT, json={"model": "support", "messages": HELLO}, headers=bearer(key)
        )
    error = assert_envelope(answer, 500, type="server_error")
    assert "support@v1" not in answer.text
    assert "`support`" in error["message"]
    assert [path for path, _ in fake.calls()].count(CHAT) == 2  # reloaded and retried once


async def test_adapter_the_engine_refuses_is_a_500_and_tried_again_later(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a"), "support")
        await set_mode(client, "acme", "support", "support@v1", preload=False)
        fake.faults = Faults(load_status=500, message="LoRA rank 2 is not supported")
        body = {"model": "support", "messages": HELLO}
        answers = [await client.post(CHAT, json=body, headers=bearer(key)) for _ in range(2)]
        fake.faults = Faults()
        healed = await client.post(CHAT, json=body, headers=bearer(key))
    for answer in answers:
        error = assert_envelope(answer, 500, type="server_error")
        assert "LoRA rank 2 is not supported" in error["message"]
    assert healed.status_code == 200
    assert fake.calls() == [("/v1/load_lora_adapter", "support@v1")] * 3 + [(CHAT, "support@v1")]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_unreachable_engine_is_503(tmp_path: Path, base_model_dir: Path) -> None:
    settings = gateway_settings(tmp_path / "data", [closed_port_url()], base_model_dir)
    async with gateway_client(settings) as client:
        chat = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
        stream = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO, "stream": True}
        )
        ready = await client.get("/ready")
        health = await client.get("/health")
    error = assert_envelope(chat, 503, type="service_unavailable")
    assert error["code"] == "engine_unavailable"
    assert assert_envelope(stream, 503, type="service_unavailable")["code"] == "engine_unavailable"
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert health.status_code == 200


async def test_unreachable_engine_message_hides_the_engine_address(
    tmp_path: Path, base_model_dir: Path
) -> None:
    url = closed_port_url()
    settings = gateway_settings(tmp_path / "data", [url], base_model_dir)
    async with gateway_client(settings) as client:
        chat = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
    message = assert_envelope(chat, 503, type="service_unavailable")["message"]
    host, port = url.removeprefix("http://").split(":")
    assert host not in message and port not in message


async def test_slow_engine_is_504(tmp_path: Path, fake: FakeVLLM, base_model_dir: Path) -> None:
    settings = gateway_settings(
        tmp_path / "data", [fake.url], base_model_dir, request_timeout_s=0.3
    )
    fake.faults = Faults(delay_s=1.0)
    async with gateway_client(settings) as client:
        answer = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
    assert assert_envelope(answer, 504, type="timeout")["code"] == "upstream_timeout"


@pytest.fixture
def store_locked(tmp_path: Path, fake: FakeVLLM, base_model_dir: Path) -> Iterator[Any]:
    """Settings whose knowledge base folder another holder keeps locked (as a running
    `lorag ingest` would): the gateway cannot open it."""
    from ingest.store import open_store

    settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir, knowledge=True)
    holder = open_store(
        knowledge_dir=settings.knowledge_dir,
        qdrant_url=None,
        collection=settings.qdrant_collection,
        dim=384,
    )
    try:
        yield settings
    finally:
        holder.close()


async def ask_while_store_down(settings: Any) -> dict[str, httpx.Response]:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await set_mode(client, "acme", "rag", "base", retrieval={"top_k": 2})
        await set_mode(
            client, "acme", "strict", "base", retrieval={"top_k": 2, "on_store_error": "fail"}
        )
        answers = {}
        for mode in ("rag", "strict"):
            body = {"model": mode, "messages": HELLO}
            answers[mode] = await client.post(CHAT, json=body, headers=bearer(key))
        answers["search"] = await client.post(
            "/v1/knowledge/search", json={"query": "x"}, headers=bearer(key)
        )
    return answers


async def test_store_down_answers_without_context_or_fails_as_the_mode_says(
    store_locked: Any, fake: FakeVLLM
) -> None:
    answers = await ask_while_store_down(store_locked)
    rag = answers["rag"]
    assert rag.status_code == 200, rag.text
    assert rag.json()["lorag"]["retrieval"]["status"] == "store_unavailable"
    assert rag.json()["lorag"]["retrieval"]["citations"] == []
    assert fake.bodies(CHAT)[0]["messages"] == HELLO  # answered without context
    for name in ("strict", "search"):
        error = assert_envelope(answers[name], 503, type="service_unavailable")
        assert error["code"] == "store_unavailable"
    assert len(fake.requests(CHAT)) == 1  # the strict mode never reached the engine


async def test_store_down_messages_hide_server_paths(store_locked: Any) -> None:
    answers = await ask_while_store_down(store_locked)
    messages = [
        answers["rag"].json()["lorag"]["retrieval"]["message"],
        answers["strict"].json()["error"]["message"],
        answers["search"].json()["error"]["message"],
    ]
    for message in messages:
        assert str(store_locked.data_dir) not in message


class NotUpYet(Engine):
    """An engine with no server up (as the embedded one while vLLM starts or restarts)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def serving_urls(self) -> list[str]:
        raise EngineUnavailable("the model engine is starting or restarting; retry shortly")

    @property
    def urls(self) -> list[str]:
        return []

    @property
    def generation(self) -> int:
        return 0

    def describe(self) -> dict[str, object]:
        return {"kind": "test", "up": False}


async def test_no_engine_up_is_503_and_a_mode_can_still_be_set(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings, engine=NotUpYet()) as client:
        key = await create_tenant(client, "acme")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a"), "support")
        mode = await set_mode(client, "acme", "support", "support@v1")
        base = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
        adapter = await client.post(
            CHAT, json={"model": "support", "messages": HELLO, "stream": True}, headers=bearer(key)
        )
        ready = await client.get("/ready")
        models = await client.get("/v1/models", headers=bearer(key))
    assert mode["preloaded"] is False and mode["target"] == "support@v1"  # loaded on first use
    for answer in (base, adapter):
        error = assert_envelope(answer, 503, type="service_unavailable")
        assert error["code"] == "engine_unavailable"
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert [m["id"] for m in models.json()["data"]] == ["support", BUNDLED_MODEL_NAME]
    assert fake.requests() == []


# --- streaming relay -----------------------------------------------------------------------
def chunks_of(raw: str) -> tuple[list[dict], list[str]]:
    events = sse_data(raw)
    return [json.loads(e) for e in events if e != "[DONE]"], events


async def test_stream_is_relayed_in_order_with_done_last(settings, fake: FakeVLLM) -> None:
    body = {"model": BASE_NAME, "messages": HELLO, "stream": True}
    async with gateway_client(settings) as client:
        plain = await client.post(CHAT, json=body)
        with_usage = await client.post(
            CHAT, json={**body, "stream_options": {"include_usage": True}}
        )
        metrics = (await client.get("/metrics")).text
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/event-stream")
    chunks, events = chunks_of(plain.text)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == expected_chat(BASE_NAME)
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert pieces == words(expected_chat(BASE_NAME))  # every event, in the engine's order
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["model"] == BASE_NAME for c in chunks)
    # the gateway always asks for usage (for its metrics) but hides it unless asked
    sent = fake.bodies(CHAT)
    assert [s["stream_options"] for s in sent] == [{"include_usage": True}] * 2
    assert all("usage" not in c for c in chunks)
    usage_chunks, usage_events = chunks_of(with_usage.text)
    assert usage_events[-1] == "[DONE]"
    assert usage_chunks[-1]["choices"] == []
    assert usage_chunks[-1]["usage"]["completion_tokens"] == len(pieces)
    assert f'lorag_tokens_total{{kind="completion"}} {2.0 * len(pieces)}' in metrics


async def test_adapter_stream_says_the_mode_name(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a"), "support")
        await set_mode(client, "acme", "support", "support@v1")
        answer = await client.post(
            "/v1/completions",
            json={"model": "support", "prompt": "Once upon a time", "stream": True},
            headers=bearer(key),
        )
    chunks, events = chunks_of(answer.text)
    assert events[-1] == "[DONE]"
    assert {c["model"] for c in chunks} == {"support"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == "support@v1 read: Once upon a time"
    assert fake.bodies("/v1/completions")[0]["model"] == "support@v1"


async def test_stream_cut_by_the_engine_ends_with_an_error_event(settings, fake: FakeVLLM) -> None:
    fake.faults = Faults(cut_after=3)
    async with gateway_client(settings) as client:
        answer = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO, "stream": True}
        )
        metrics = (await client.get("/metrics")).text
    events = sse_data(answer.text)
    assert "[DONE]" not in events
    relayed = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"].get("content") for c in relayed] == [
        "",
        *words(expected_chat(BASE_NAME))[:2],
    ]
    error = json.loads(events[-1])["error"]
    assert error["type"] == "service_unavailable" and error["code"] == "engine_unavailable"
    assert 'lorag_requests_total{endpoint="chat",kind="base",status="503"} 1.0' in metrics
