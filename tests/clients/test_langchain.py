"""`langchain-openai`, unchanged but for `base_url` and the key, in every mode kind: `ChatOpenAI`
invoke, stream, `bind_tools` and `with_structured_output`; `OpenAIEmbeddings`."""

from __future__ import annotations

import math

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

from ingest.embedding import BUNDLED_MODEL_NAME
from tests.clients.conftest import Clients, each_mode

QUESTION = "Where is the Quentaro kettle made?"


class Capital(BaseModel):
    """The capital city of a country."""

    country: str
    capital: str


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


def chat(clients: Clients, mode: str, max_tokens: int = 24) -> ChatOpenAI:
    return ChatOpenAI(
        model=mode,
        base_url=clients.url,
        api_key=clients.key,
        temperature=0,
        max_tokens=max_tokens,
        max_retries=0,
    )


def test_invoke_and_stream_give_the_same_answer(clients: Clients) -> None:
    def check(mode: str) -> None:
        llm = chat(clients, mode)
        answer = llm.invoke(QUESTION)
        assert isinstance(answer.content, str) and answer.content
        assert answer.response_metadata["model_name"] == mode
        streamed = "".join(str(chunk.content) for chunk in llm.stream(QUESTION))
        assert streamed == answer.content

    each_mode(check)


def test_bind_tools_returns_a_parsed_tool_call(clients: Clients) -> None:
    def check(mode: str) -> None:
        llm = chat(clients, mode, max_tokens=48).bind_tools(
            [get_weather], tool_choice="get_weather"
        )
        message = llm.invoke("What is the weather in Paris?")
        [call] = message.tool_calls
        assert call["name"] == "get_weather"
        assert isinstance(call["args"]["city"], str) and call["id"]
        assert get_weather.invoke(call["args"]).startswith("sunny in ")

    each_mode(check)


def test_with_structured_output_gives_the_schema(clients: Clients) -> None:
    def check(mode: str) -> None:
        structured = chat(clients, mode, max_tokens=48).with_structured_output(
            Capital, method="json_schema", strict=True
        )
        capital = structured.invoke("What is the capital of France?")
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
