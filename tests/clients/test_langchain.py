"""`langchain-openai`, unchanged but for `base_url` and the key, in every mode kind: `ChatOpenAI`
invoke, stream, `bind_tools` and `with_structured_output`; `OpenAIEmbeddings`. The chat
requests, every feature in every mode, are sent at once."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from ingest.embedding import BUNDLED_MODEL_NAME
from tests.clients.conftest import Capital, Clients, answered, batched, each_mode, every_mode

QUESTION = "Where is the Quentaro kettle made?"


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


def chat(clients: Clients, mode: str, max_tokens: int = 16) -> ChatOpenAI:
    return ChatOpenAI(
        model=mode,
        base_url=clients.url,
        api_key=clients.key,
        temperature=0,
        max_tokens=max_tokens,
        max_retries=0,
    )


@batched("langchain")
def calls(clients: Clients) -> dict[str, Callable[[], object]]:
    """Every feature's request in every mode (sent with the other clients' at once)."""

    def requests(mode: str) -> dict[str, Callable[[], object]]:
        llm = chat(clients, mode)
        tools = chat(clients, mode, max_tokens=48).bind_tools(
            [get_weather], tool_choice="get_weather"
        )
        structured = chat(clients, mode, max_tokens=48).with_structured_output(
            Capital, method="json_schema", strict=True
        )
        return {
            "invoke": lambda: llm.invoke(QUESTION),
            "stream": lambda: list(llm.stream(QUESTION)),
            "bind_tools": lambda: tools.invoke("What is the weather in Paris?"),
            "structured": lambda: structured.invoke("What is the capital of France?"),
        }

    return every_mode(requests)


@pytest.fixture(scope="module")
def outcomes(all_outcomes: dict[str, dict[str, object]]) -> dict[str, object]:
    return all_outcomes["langchain"]


def test_invoke_and_stream_give_the_same_answer(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        answer = answered(outcomes, f"invoke/{mode}")
        assert isinstance(answer.content, str) and answer.content
        assert answer.response_metadata["model_name"] == mode
        streamed = "".join(str(chunk.content) for chunk in answered(outcomes, f"stream/{mode}"))
        assert streamed == answer.content

    each_mode(check)


def test_bind_tools_returns_a_parsed_tool_call(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        [call] = answered(outcomes, f"bind_tools/{mode}").tool_calls
        assert call["name"] == "get_weather"
        assert isinstance(call["args"]["city"], str) and call["id"]
        assert get_weather.invoke(call["args"]).startswith("sunny in ")

    each_mode(check)


def test_with_structured_output_gives_the_schema(outcomes: dict[str, object]) -> None:
    def check(mode: str) -> None:
        capital = answered(outcomes, f"structured/{mode}")
        assert isinstance(capital, Capital)
        assert capital.country and capital.capital

    each_mode(check)


def test_openai_embeddings(clients: Clients) -> None:
    embeddings = OpenAIEmbeddings(
        model=BUNDLED_MODEL_NAME,
        base_url=clients.url,
        api_key=clients.key,
        # LangChain would send tiktoken's token ids (and fetch tiktoken's tables from the net)
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    documents = embeddings.embed_documents(["A kettle heats water.", "Stocks fell on Tuesday."])
    query = embeddings.embed_query("How fast does the kettle boil?")
    assert len(documents) == 2 and all(len(vector) == 384 for vector in documents)
    assert math.isclose(math.fsum(x * x for x in query), 1.0, rel_tol=1e-4)
    kettle, stocks = (sum(q * d for q, d in zip(query, v, strict=True)) for v in documents)
    assert kettle > stocks
