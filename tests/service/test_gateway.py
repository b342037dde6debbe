"""The OpenAI-compatible gateway against the real vLLM engine and bundled model."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.conftest import Gateway

QUESTION = "What is the capital of France? Answer in one sentence."


def ask(gw: Gateway, question: str = QUESTION, **kwargs: object) -> str:
    reply = gw.openai().chat.completions.create(
        model=gw.base_name,
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=kwargs.pop("max_tokens", 32),
        **kwargs,
    )
    return reply.choices[0].message.content or ""


def test_chat_answers_paris_deterministically(gw: Gateway) -> None:
    first, second = ask(gw), ask(gw)
    assert "Paris" in first
    assert first == second


def test_streaming_matches_non_streaming(gw: Gateway) -> None:
    stream = gw.openai().chat.completions.create(
        model=gw.base_name,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=32,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3
    assert {c.model for c in chunks} == {gw.base_name}
    assert text == ask(gw)


def test_stream_usage_only_when_asked(gw: Gateway) -> None:
    kwargs = dict(
        model=gw.base_name,
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=8,
        stream=True,
    )
    plain = list(gw.openai().chat.completions.create(**kwargs))
    assert all(c.usage is None for c in plain)
    with_usage = list(
        gw.openai().chat.completions.create(**kwargs, stream_options={"include_usage": True})
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 8


def test_completions_endpoint(gw: Gateway) -> None:
    reply = gw.openai().completions.create(
        model=gw.base_name, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert reply.model == gw.base_name
    assert "Paris" in reply.choices[0].text
    assert reply.usage.completion_tokens > 0


def test_models_list(gw: Gateway) -> None:
    ids = [m.id for m in gw.openai().models.list()]
    assert ids == [gw.base_name]


def test_malformed_json_is_400_envelope(gw: Gateway) -> None:
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"]


def test_invalid_field_names_the_field(gw: Gateway) -> None:
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": gw.base_name, "messages": [], "max_tokens": 5},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "messages"
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": gw.base_name, "messages": [{"role": "user", "content": "x"}],
              "temperature": 7},
    )  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "temperature"


def test_unknown_model_is_404(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.openai().chat.completions.create(
            model="gpt-17", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert caught.value.status_code == 404
    assert caught.value.body["param"] == "model"


def test_request_id_header(gw: Gateway) -> None:
    given = httpx.get(f"{gw.url}/v1/models", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = httpx.get(f"{gw.url}/v1/models")
    assert len(made.headers["x-request-id"]) == 32


def test_metrics_count_requests_and_tokens(gw: Gateway) -> None:
    ask(gw, max_tokens=4)
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'lorag_requests_total{endpoint="chat",kind="base",status="200"}' in text
    assert 'lorag_tokens_total{kind="completion"}' in text
    assert "lorag_time_to_first_token_seconds_bucket" in text or "lorag_request_seconds" in text


def _running_in_vllm(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("vllm:num_requests_running not exported")


def test_client_disconnect_cancels_upstream(gw: Gateway) -> None:
    vllm = gw.vllm_url()
    body = {
        "model": gw.base_name,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 1500,
        "min_tokens": 1500,
        "stream": True,
    }
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{gw.url}/v1/chat/completions", json=body) as answer,
    ):
        lines = answer.iter_lines()
        assert next(lines).startswith("data: ")
        assert _running_in_vllm(vllm) == 1
    # leaving the block closed the connection mid-stream
    deadline = time.monotonic() + 10
    while _running_in_vllm(vllm) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_in_vllm(vllm) == 0
    assert "Paris" in ask(gw)


def test_engine_killed_then_503_then_restarted(gw: Gateway) -> None:
    import os
    import signal

    pid = gw.engine_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        answer = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": gw.base_name, "messages": [{"role": "user", "content": "hi"}],
                  "max_tokens": 4},
        )  # fmt: skip
        status = answer.status_code
        if status == 503:
            assert answer.json()["error"]["type"] == "service_unavailable"
            break
        time.sleep(0.2)
    assert status == 503
    assert httpx.get(f"{gw.url}/ready").status_code == 503
    assert httpx.get(f"{gw.url}/health").status_code == 200
    gw.wait_ready(timeout_s=300)
    assert gw.engine_pid() != pid
    assert "Paris" in ask(gw)
    assert json.loads(httpx.get(f"{gw.url}/ready").text)["engine"]["restarts"] >= 1
