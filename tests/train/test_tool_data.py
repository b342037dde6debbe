"""Training data with tool calls, in OpenAI's fine-tuning chat format: `tools`, assistant
`tool_calls` (content null), `tool` results, `weight` 0 for context turns.

Proven against the real parts that must agree: the bundled tokenizer and chat template render
the training text, and it is token for token what the session's real vLLM renders for the same
conversation and tools (so an adapter learns the tool-call format vLLM's parser reads back).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway
from train.data_formats import load_examples
from train.encoding import IGNORE_INDEX, encode_messages
from train.errors import InvalidData
from train.examples import Example, read_examples, write_examples
from train.scrub import scrub_example

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
RECORD = {
    "tools": [WEATHER],
    "messages": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello, how can I help?", "weight": 0},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "snow", "c": -3}'},
        {"role": "assistant", "content": "Snowing in Oslo, -3 C.", "weight": 1},
    ],
}


def with_messages(**changes: object) -> dict[str, object]:
    """RECORD with some of its messages replaced: `m3={...}` replaces messages[3]."""
    messages = list(RECORD["messages"])  # type: ignore[call-overload]
    for name, message in changes.items():
        messages[int(name[1:])] = message
    return {**RECORD, "messages": messages}


def test_a_tool_call_conversation_is_read_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    [example], fmt = load_examples(path)
    assert fmt == "chat"
    assert example.tools == (WEATHER,)
    assert example.messages[3] == {"role": "assistant", "content": None, "tool_calls": [CALL]}
    assert example.messages[4]["tool_call_id"] == "call_1"
    assert example.messages[1]["weight"] == 0
    assert example.conversation[0] == {"role": "tools", "tools": [WEATHER]}
    write_examples(tmp_path / "copy.jsonl", [example])
    assert read_examples(tmp_path / "copy.jsonl") == [example]


def test_every_bad_tool_record_is_reported_with_its_line(tmp_path: Path) -> None:
    bad_call = {**CALL, "function": {"name": "get_weather", "arguments": "Oslo"}}
    records = [
        RECORD,  # 1 ok
        with_messages(m3={"role": "assistant", "content": None, "tool_calls": [bad_call]}),
        with_messages(
            m3={
                "role": "assistant",
                "content": None,
                "tool_calls": [{**CALL, "function": {"name": "launch", "arguments": "{}"}}],
            }
        ),
        with_messages(m4={"role": "tool", "tool_call_id": "call_9", "content": "x"}),
        with_messages(m0={"role": "user", "content": "Hi!", "weight": 0}),
        with_messages(
            m3={"role": "assistant", "content": None, "tool_calls": [CALL], "weight": 0},
            m5={"role": "assistant", "content": "ok", "weight": 0},
        ),
        {"messages": RECORD["messages"]},  # 7: calls a tool the record does not offer
        {**RECORD, "tools": [{"type": "function", "function": {}}]},
        with_messages(m3={"role": "assistant", "content": None}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with pytest.raises(InvalidData) as caught:
        load_examples(path)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(2, 10)]
    assert "messages[3].tool_calls[0].function.arguments" in problems[0]
    assert "'launch', not among the record's tools: get_weather" in problems[1]
    assert "tool_call_id 'call_9' answers no earlier tool call" in problems[2]
    assert "messages[0]: 'weight' is 0 or 1, on assistant messages only" in problems[3]
    assert "every assistant message has weight 0" in problems[4]
    assert "the record has no 'tools'" in problems[5]
    assert problems[6].startswith("line 8: tools[0]: expected")
    assert "messages[3]: missing or non-string 'content'" in problems[7]


def test_scrubbing_reaches_the_tool_call_arguments() -> None:
    leaky = {**CALL, "function": {"name": "get_weather", "arguments": '{"to": "ann@corp.example"}'}}
    example = Example(
        ({"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [leaky]}),
        tools=(WEATHER,),
    )
    counts: Counter[str] = Counter()
    scrubbed = scrub_example(example, counts)
    assert "ann@corp.example" not in json.dumps(scrubbed.messages)
    assert counts["email"] == 1 and scrubbed.tools == example.tools


def test_training_text_is_what_vllm_renders_and_teaches_the_calls(
    tmp_path: Path, gateway: Gateway, base_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    [example], _ = load_examples(path)
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    encoded = encode_messages(tokenizer, example.conversation, max_len=2048)
    assert encoded is not None

    gateway.wait_ready()
    served = httpx.post(
        f"{gateway.vllm_url()}/tokenize",
        json={
            "model": gateway.base_name,
            "messages": RECORD["messages"],
            "tools": [WEATHER],
            "add_generation_prompt": False,
        },
        headers=gateway.vllm_headers(),
        timeout=60,
    )
    assert served.status_code == 200, served.text
    assert served.json()["tokens"] == encoded.input_ids

    taught = tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}' in taught
    assert "Snowing in Oslo, -3 C." in taught
    assert "Hello, how can I help?" not in taught  # weight 0: context only
    assert "Weather in Oslo?" not in taught and '"sky"' not in taught  # user and tool turns
