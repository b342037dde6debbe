"""The `openai` SDK, unchanged but for `base_url` and the key, in every mode kind: chat,
streaming, tools (auto, required, none, named; streamed and not), structured output."""

from __future__ import annotations

import json

import openai
import pytest

from tests.clients.conftest import (
    CITY_SCHEMA,
    RETRIEVAL_MODES,
    WEATHER_TOOL,
    Clients,
    each_mode,
)

WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
KETTLE_QUESTION = [{"role": "user", "content": "Where is the Quentaro kettle made?"}]


@pytest.fixture(scope="module")
def sdk(clients: Clients) -> openai.OpenAI:
    return openai.OpenAI(base_url=clients.url, api_key=clients.key, max_retries=0)


def weather_city(arguments: str) -> str:
    """The `city` of a get_weather call: its arguments must be a JSON object naming one."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, dict) and isinstance(parsed["city"], str), arguments
    return str(parsed["city"])


def test_chat_names_the_mode_and_streams_chunks_with_choices(sdk: openai.OpenAI) -> None:
    def check(mode: str) -> None:
        raw = sdk.chat.completions.with_raw_response.create(
            model=mode, messages=KETTLE_QUESTION, temperature=0, max_tokens=24
        )
        assert raw.headers["x-lorag-mode"] == mode
        reply = raw.parse()
        assert reply.model == mode
        assert reply.choices[0].message.content
        chunks = list(
            sdk.chat.completions.create(
                model=mode, messages=KETTLE_QUESTION, temperature=0, max_tokens=24, stream=True
            )
        )
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


def test_named_tool_choice_returns_a_parsed_call(sdk: openai.OpenAI) -> None:
    def check(mode: str) -> None:
        reply = sdk.chat.completions.create(
            model=mode,
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            temperature=0,
            max_tokens=48,
        )
        calls = reply.choices[0].message.tool_calls
        assert calls and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        assert calls[0].id
        weather_city(calls[0].function.arguments)

    each_mode(check)


def test_required_tool_choice_streams_a_parsed_call(sdk: openai.OpenAI) -> None:
    def check(mode: str) -> None:
        stream = sdk.chat.completions.create(
            model=mode,
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice="required",
            temperature=0,
            max_tokens=48,
            stream=True,
        )
        names, arguments = [], ""
        for chunk in stream:
            for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
        assert names == ["get_weather"]
        weather_city(arguments)

    each_mode(check)


def test_auto_and_none_tool_choices(sdk: openai.OpenAI) -> None:
    def check(mode: str) -> None:
        # what agents send on every request: accepted, and any call comes back parsed
        auto = sdk.chat.completions.create(
            model=mode,
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice="auto",
            temperature=0,
            max_tokens=48,
        )
        message = auto.choices[0].message
        assert message.content or message.tool_calls
        for call in message.tool_calls or []:
            assert call.function.name == "get_weather"
            assert "<tool_call>" not in (message.content or "")
        none = sdk.chat.completions.create(
            model=mode,
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice="none",
            temperature=0,
            max_tokens=24,
        )
        assert not none.choices[0].message.tool_calls
        assert none.choices[0].message.content

    each_mode(check)


def test_tool_result_is_answered(sdk: openai.OpenAI) -> None:
    """The second turn of a tool call: the assistant's call (no content) and the tool's
    result go back in; the answer is text (in retrieval modes, with sources)."""

    def check(mode: str) -> None:
        reply = sdk.chat.completions.create(
            model=mode,
            messages=[
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
            ],
            tools=[WEATHER_TOOL],
            temperature=0,
            max_tokens=24,
        )
        assert reply.choices[0].message.content
        if mode in RETRIEVAL_MODES:
            assert "retrieval" in (reply.model_extra or {})["lorag"]

    each_mode(check)


def test_structured_output_validates(sdk: openai.OpenAI) -> None:
    def check(mode: str) -> None:
        strict = sdk.chat.completions.create(
            model=mode,
            messages=[{"role": "user", "content": "Name a city and its country as JSON."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "place", "schema": CITY_SCHEMA, "strict": True},
            },
            temperature=0,
            max_tokens=48,
        )
        place = json.loads(strict.choices[0].message.content or "")
        assert set(place) == {"city", "country"}
        assert all(isinstance(value, str) for value in place.values())
        # an open request lets this small model ramble inside the object until max_tokens; a
        # closed one ends it (a truncated object would be the client's max_tokens, not ours)
        question = 'Give the capital of France as a JSON object with the key "capital".'
        loose = sdk.chat.completions.create(
            model=mode,
            messages=[{"role": "user", "content": question}],
            response_format={"type": "json_object"},
            temperature=0,
            max_tokens=48,
        )
        assert loose.choices[0].finish_reason == "stop"
        assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)

    each_mode(check)


def test_responses_api_in_base_and_adapter_modes(sdk: openai.OpenAI) -> None:
    """What the OpenAI Agents SDK talks by default: answered in base and adapter modes,
    streamed and not; retrieval modes name the endpoint that serves them."""

    def check(mode: str) -> None:
        question = "Where is the Quentaro kettle made?"
        if mode in RETRIEVAL_MODES:
            with pytest.raises(openai.BadRequestError) as refused:
                sdk.responses.create(model=mode, input=question, max_output_tokens=16)
            assert refused.value.body["param"] == "model"
            assert "/v1/chat/completions" in refused.value.body["message"]
            return
        reply = sdk.responses.create(
            model=mode, input=question, temperature=0, max_output_tokens=24
        )
        assert reply.model == mode and reply.output_text
        deltas, completed = [], None
        for event in sdk.responses.create(
            model=mode, input=question, temperature=0, max_output_tokens=24, stream=True
        ):
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                completed = event.response
        assert completed is not None and completed.model == mode
        assert "".join(deltas) == completed.output_text == reply.output_text

    each_mode(check)


def test_responses_api_is_stateless_and_says_so(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="plain", input="And then?", previous_response_id="resp_1")
    assert refused.value.body["param"] == "previous_response_id"
    assert "input" in refused.value.body["message"]
