"""The OpenAI-compatible gateway against the real vLLM engine and bundled model."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.embedding import BUNDLED_MODEL_NAME
from lorag.hardware import detect_cpu
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
    cards = gw.openai().models.list().data
    assert [m.id for m in cards] == [gw.base_name, BUNDLED_MODEL_NAME]
    assert cards[0].model_extra["max_model_len"] == 2048


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
        json={
            "model": gw.base_name,
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 7,
        },
    )
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


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metric_samples(gw: Gateway) -> Samples:
    text = httpx.get(f"{gw.url}/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_requests_and_tokens(gw: Gateway) -> None:
    before = metric_samples(gw)
    reply = gw.openai().chat.completions.create(
        model=gw.base_name,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=4,
    )
    after = metric_samples(gw)
    chat = {"endpoint": "chat"}
    assert delta(before, after, "lorag_requests_total", **chat, kind="base", status="200") == 1
    assert reply.usage is not None
    tokens = delta(before, after, "lorag_tokens_total", kind="completion")
    assert tokens == reply.usage.completion_tokens
    assert delta(before, after, "lorag_request_seconds_count", **chat) == 1
    # time to first token is a streaming measure: a non-streaming reply records none
    assert delta(before, after, "lorag_time_to_first_token_seconds_count", **chat) == 0


def test_metrics_time_to_first_token_of_a_stream(gw: Gateway) -> None:
    body = {
        "model": gw.base_name,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 8,
        "stream": True,
    }
    before = metric_samples(gw)
    # read to the end: the request is counted when the stream closes
    events = httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=60).text
    after = metric_samples(gw)
    assert events.rstrip().endswith("data: [DONE]")
    chat = {"endpoint": "chat"}
    assert delta(before, after, "lorag_time_to_first_token_seconds_count", **chat) == 1
    assert delta(before, after, "lorag_request_seconds_count", **chat) == 1
    ttft = delta(before, after, "lorag_time_to_first_token_seconds_sum", **chat)
    assert 0 < ttft <= delta(before, after, "lorag_request_seconds_sum", **chat)


def _running_in_vllm(gw: Gateway) -> float:
    metrics = httpx.get(f"{gw.vllm_url()}/metrics", headers=gw.vllm_headers())
    for line in metrics.text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("vllm:num_requests_running not exported")


def test_client_disconnect_cancels_upstream(gw: Gateway) -> None:
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
        assert _running_in_vllm(gw) == 1
    # leaving the block closed the connection mid-stream
    deadline = time.monotonic() + 10
    while _running_in_vllm(gw) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_in_vllm(gw) == 0
    assert "Paris" in ask(gw)


def test_ready_shows_the_engine_dtype_and_its_reason_to_admins_only(gw: Gateway) -> None:
    public = httpx.get(f"{gw.url}/ready").json()
    assert public == {"ready": True}  # no pid, URLs or hardware for anonymous callers
    detail = httpx.get(f"{gw.url}/ready", headers={"x-admin-key": gw.admin_key}).json()
    assert detail["hardware"]["engine_dtype"] == {
        "value": "float32",  # what the test gateway asks for (LORAG_VLLM_DTYPE)
        "requested": "float32",
        "reason": "asked for",
    }
    assert detail["hardware"]["cpu"] == detect_cpu().describe()
    args = Path(f"/proc/{gw.engine_pid()}/cmdline").read_bytes().split(b"\0")
    assert args[args.index(b"--dtype") + 1] == b"float32"
    assert "engine dtype: float32 (asked for)" in gw.log_path.read_text()


def test_the_engine_inherits_no_secret(gw: Gateway) -> None:
    environ = Path(f"/proc/{gw.engine_pid()}/environ").read_bytes().split(b"\0")
    assert f"LORAG_DATA_DIR={gw.data_dir}".encode() in environ  # what it may inherit, it does
    assert not any(entry.startswith(b"LORAG_ADMIN_KEY=") for entry in environ)
    assert gw.admin_key.encode() not in b"\0".join(environ)
