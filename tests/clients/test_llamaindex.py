"""LlamaIndex's `OpenAILike`, unchanged but for `api_base` and the key, in every mode kind:
chat, streamed chat, a tool call it parses and runs, structured prediction."""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel

from tests.clients.conftest import RETRIEVAL_MODES, Clients, each_mode

QUESTION = [ChatMessage(role="user", content="Where is the Quentaro kettle made?")]


class Capital(BaseModel):
    """The capital city of a country."""

    country: str
    capital: str


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


def llm(clients: Clients, mode: str, max_tokens: int = 24) -> OpenAILike:
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
    )


def test_chat_and_stream_chat_give_the_same_answer(clients: Clients) -> None:
    def check(mode: str) -> None:
        client = llm(clients, mode)
        answer = client.chat(QUESTION)
        assert answer.message.content
        assert answer.raw is not None and answer.raw.model == mode
        if mode in RETRIEVAL_MODES:
            citations = (answer.raw.model_extra or {})["lorag"]["retrieval"]["citations"]
            assert citations[0]["doc_id"] == "quentaro-sheet"
        streamed = list(client.stream_chat(QUESTION))
        assert streamed[-1].message.content == answer.message.content

    each_mode(check)


def test_a_tool_call_is_parsed_and_runs(clients: Clients) -> None:
    weather = FunctionTool.from_defaults(fn=get_weather)

    def check(mode: str) -> None:
        client = llm(clients, mode, max_tokens=48)
        response = client.chat_with_tools(
            [weather], user_msg="What is the weather in Paris?", tool_required=True
        )
        [call] = client.get_tool_calls_from_response(response, error_on_no_tool_call=True)
        assert call.tool_name == "get_weather" and call.tool_id
        assert isinstance(call.tool_kwargs["city"], str)
        assert weather.call(**call.tool_kwargs).content.startswith("sunny in ")

    each_mode(check)


def test_structured_predict_gives_the_model(clients: Clients) -> None:
    from llama_index.core.prompts import PromptTemplate

    def check(mode: str) -> None:
        capital = llm(clients, mode, max_tokens=48).structured_predict(
            Capital, PromptTemplate("What is the capital of {country}?"), country="France"
        )
        assert isinstance(capital, Capital)
        assert capital.country and capital.capital

    each_mode(check)
