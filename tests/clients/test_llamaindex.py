"""LlamaIndex's `OpenAILike`, unchanged but for `api_base` and the key, in every mode kind:
chat, streamed chat, a tool call it parses and runs, structured prediction. The requests,
every feature in every mode, are sent at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike

from tests.clients.conftest import (
    RETRIEVAL_MODES,
    Capital,
    Clients,
    answered,
    batched,
    each_mode,
    every_mode,
)

QUESTION = [ChatMessage(role="user", content="Where is the Quentaro kettle made?")]


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


WEATHER = FunctionTool.from_defaults(fn=get_weather)


def llm(clients: Clients, mode: str, max_tokens: int = 16) -> OpenAILike:
    return OpenAILike(
        model=mode,
        api_base=clients.url,
        api_key=clients.key,
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=8192,
        temperature=0,
        max_tokens=max_tokens,
        max_retries=0,
        # OpenAI's SDK waits 600 s, LlamaIndex 60 s by default: the client modules' requests
        # go to vLLM in one batch, which takes over a minute on a slow 2-core CPU
        timeout=600,
    )


@batched("llamaindex")
def calls(clients: Clients) -> dict[str, Callable[[], object]]:
    """Every feature's request in every mode (sent with the other clients' at once)."""

    def requests(mode: str) -> dict[str, Callable[[], object]]:
        client, longer = llm(clients, mode), llm(clients, mode, max_tokens=48)
        return {
            "chat": lambda: client.chat(QUESTION),
            "stream_chat": lambda: list(client.stream_chat(QUESTION)),
            "tools": lambda: longer.chat_with_tools(
                [WEATHER], user_msg="What is the weather in Paris?", tool_required=True
            ),
            "structured": lambda: longer.structured_predict(
                Capital, PromptTemplate("What is the capital of {country}?"), country="France"
            ),
        }

    return every_mode(requests)


@pytest.fixture(scope="module")
def outcomes(all_outcomes: dict[str, dict[str, object]]) -> dict[str, object]:
    return all_outcomes["llamaindex"]


def test_chat_and_stream_chat_give_the_same_answer(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        answer = answered(outcomes, f"chat/{mode}")
        assert answer.message.content
        assert answer.raw is not None and answer.raw.model == mode
        if mode in RETRIEVAL_MODES:
            citations = (answer.raw.model_extra or {})["lorag"]["retrieval"]["citations"]
            assert citations[0]["doc_id"] == "quentaro-sheet"
        streamed = answered(outcomes, f"stream_chat/{mode}")
        assert streamed[-1].message.content == answer.message.content

    each_mode(check)


def test_a_tool_call_is_parsed_and_runs(clients: Clients, outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        response = answered(outcomes, f"tools/{mode}")
        calls = llm(clients, mode).get_tool_calls_from_response(
            response, error_on_no_tool_call=True
        )
        [call] = calls
        assert call.tool_name == "get_weather" and call.tool_id
        assert isinstance(call.tool_kwargs["city"], str)
        assert WEATHER.call(**call.tool_kwargs).content.startswith("sunny in ")

    each_mode(check)


def test_structured_predict_gives_the_model(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        capital = answered(outcomes, f"structured/{mode}")
        assert isinstance(capital, Capital)
        assert capital.country and capital.capital

    each_mode(check)
