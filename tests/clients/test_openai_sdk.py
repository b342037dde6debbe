"""The `openai` SDK, unchanged but for `base_url` and the key, in every mode kind: chat,
streaming, tools (auto, required, none, named; streamed and not), structured output, the
Responses API.

The module's requests, every feature in every mode, are sent at once (`outcomes`); each test
then checks what its feature got."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest

from tests.clients.conftest import (
    CITY_SCHEMA,
    RETRIEVAL_MODES,
    WEATHER_TOOL,
    Clients,
    answered,
    batched,
    each_mode,
    every_mode,
)

WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
KETTLE_QUESTION = [{"role": "user", "content": "Where is the Quentaro kettle made?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
TOOL_TURN = [
    *WEATHER_QUESTION,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny", "c": 21}'},
]
PLACE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "place", "schema": CITY_SCHEMA, "strict": True},
}
# an open request lets this small model ramble inside the object until max_tokens; a closed
# one ends it (a truncated object would be the client's max_tokens, not ours)
CAPITAL_QUESTION = 'Give the capital of France as a JSON object with the key "capital".'


@batched("openai")
def calls(clients: Clients) -> dict[str, Callable[[], object]]:
    """Every feature's request in every mode (sent with the other clients' at once)."""
    sdk = openai.OpenAI(base_url=clients.url, api_key=clients.key, max_retries=0)
    chat = sdk.chat.completions

    def requests(mode: str) -> dict[str, Callable[[], object]]:
        greedy = {"model": mode, "temperature": 0}
        calls: dict[str, Callable[[], object]] = {
            "chat": lambda: chat.with_raw_response.create(
                **greedy, messages=KETTLE_QUESTION, max_tokens=16
            ),
            "chat-stream": lambda: list(
                chat.create(**greedy, messages=KETTLE_QUESTION, max_tokens=16, stream=True)
            ),
            "named": lambda: chat.create(
                **greedy,
                messages=WEATHER_QUESTION,
                tools=[WEATHER_TOOL],
                tool_choice=NAMED,
                max_tokens=48,
            ),
            "required-stream": lambda: list(
                chat.create(
                    **greedy,
                    messages=WEATHER_QUESTION,
                    tools=[WEATHER_TOOL],
                    tool_choice="required",
                    max_tokens=48,
                    stream=True,
                )
            ),
            "auto": lambda: chat.create(
                **greedy,
                messages=WEATHER_QUESTION,
                tools=[WEATHER_TOOL],
                tool_choice="auto",
                max_tokens=48,
            ),
            "none": lambda: chat.create(
                **greedy,
                messages=WEATHER_QUESTION,
                tools=[WEATHER_TOOL],
                tool_choice="none",
                max_tokens=16,
            ),
            "tool-result": lambda: chat.create(
                **greedy, messages=TOOL_TURN, tools=[WEATHER_TOOL], max_tokens=16
            ),
            "strict-json": lambda: chat.create(
                **greedy,
                messages=[{"role": "user", "content": "Name a city and its country as JSON."}],
                response_format=PLACE_FORMAT,
                max_tokens=48,
            ),
            "json-object": lambda: chat.create(
                **greedy,
                messages=[{"role": "user", "content": CAPITAL_QUESTION}],
                response_format={"type": "json_object"},
                max_tokens=48,
            ),
            "responses": lambda: sdk.responses.create(
                **greedy, input=KETTLE_QUESTION[0]["content"], max_output_tokens=16
            ),
        }
        if mode not in RETRIEVAL_MODES:
            calls["responses-stream"] = lambda: list(
                sdk.responses.create(
                    **greedy,
                    input=KETTLE_QUESTION[0]["content"],
                    max_output_tokens=16,
                    stream=True,
                )
            )
        return calls

    every = every_mode(requests)
    every["stateful"] = lambda: sdk.responses.create(
        model="plain", input="And then?", previous_response_id="resp_1"
    )
    return every


@pytest.fixture(scope="module")
def outcomes(all_outcomes: dict[str, dict[str, object]]) -> dict[str, object]:
    return all_outcomes["openai"]


def weather_city(arguments: str) -> str:
    """The `city` of a get_weather call: its arguments must be a JSON object naming one."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, dict) and isinstance(parsed["city"], str), arguments
    return str(parsed["city"])


def test_chat_names_the_mode_and_streams_chunks_with_choices(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        raw = answered(outcomes, f"chat/{mode}")
        assert raw.headers["x-lorag-mode"] == mode
        reply = raw.parse()
        assert reply.model == mode
        assert reply.choices[0].message.content
        chunks = answered(outcomes, f"chat-stream/{mode}")
        # a naive client reads choices[0] of every chunk: without include_usage each has one
        assert all(chunk.choices for chunk in chunks)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        assert text == reply.choices[0].message.content
        last = chunks[-1]
        assert last.choices[0].finish_reason is not None
        extension = (last.model_extra or {}).get("lorag")
        if mode in RETRIEVAL_MODES:
            citations = extension["retrieval"]["citations"]
            assert citations[0]["doc_id"] == "quentaro-sheet"
            assert (reply.model_extra or {})["lorag"]["retrieval"]["citations"] == citations
        else:
            assert extension is None

    each_mode(check)


def test_named_tool_choice_returns_a_parsed_call(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        calls = answered(outcomes, f"named/{mode}").choices[0].message.tool_calls
        assert calls and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        assert calls[0].id
        weather_city(calls[0].function.arguments)

    each_mode(check)


def test_required_tool_choice_streams_a_parsed_call(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        names, arguments = [], ""
        for chunk in answered(outcomes, f"required-stream/{mode}"):
            for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
        assert names == ["get_weather"]
        weather_city(arguments)

    each_mode(check)


def test_auto_and_none_tool_choices(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        # what agents send on every request: accepted, and any call comes back parsed
        message = answered(outcomes, f"auto/{mode}").choices[0].message
        assert message.content or message.tool_calls
        for call in message.tool_calls or []:
            assert call.function.name == "get_weather"
            assert "<tool_call>" not in (message.content or "")
        none = answered(outcomes, f"none/{mode}").choices[0].message
        assert not none.tool_calls
        assert none.content

    each_mode(check)


def test_tool_result_is_answered(outcomes: dict[str, object]) -> None:
    """The second turn of a tool call: the assistant's call (no content) and the tool's
    result go back in; the answer is text (in retrieval modes, with sources)."""

    def check(mode: str) -> None:
        reply = answered(outcomes, f"tool-result/{mode}")
        assert reply.choices[0].message.content
        if mode in RETRIEVAL_MODES:
            assert "retrieval" in (reply.model_extra or {})["lorag"]

    each_mode(check)


def test_structured_output_validates(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        strict = answered(outcomes, f"strict-json/{mode}")
        place = json.loads(strict.choices[0].message.content or "")
        assert set(place) == {"city", "country"}
        assert all(isinstance(value, str) for value in place.values())
        loose = answered(outcomes, f"json-object/{mode}")
        assert loose.choices[0].finish_reason == "stop"
        assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)

    each_mode(check)


def test_responses_api_in_base_and_adapter_modes(outcomes: dict[str, object]) -> None:
    """What the OpenAI Agents SDK talks by default: answered in base and adapter modes,
    streamed and not; retrieval modes name the endpoint that serves them."""

    def check(mode: str) -> None:
        if mode in RETRIEVAL_MODES:
            refused = outcomes[f"responses/{mode}"]
            assert isinstance(refused, openai.BadRequestError), refused
            assert refused.body["param"] == "model"
            assert "/v1/chat/completions" in refused.body["message"]
            return
        reply = answered(outcomes, f"responses/{mode}")
        assert reply.model == mode and reply.output_text
        events = answered(outcomes, f"responses-stream/{mode}")
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        [completed] = [e.response for e in events if e.type == "response.completed"]
        assert completed.model == mode
        assert "".join(deltas) == completed.output_text == reply.output_text

    each_mode(check)


def test_responses_api_is_stateless_and_says_so(outcomes: dict[str, object]) -> None:
    refused = outcomes["stateful"]
    assert isinstance(refused, openai.BadRequestError), refused
    assert refused.body["param"] == "previous_response_id"
    assert "input" in refused.body["message"]
