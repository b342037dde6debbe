"""The OpenAI Agents SDK, unchanged but for the client's `base_url` and key: one agent turn
with a tool in every mode kind. Base and adapter modes go through `/v1/responses` (the SDK's
default model); retrieval modes through `/v1/chat/completions` (`OpenAIChatCompletionsModel`),
the endpoint `/v1/responses` names when it refuses them."""

from __future__ import annotations

import asyncio

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    RunResult,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.clients.conftest import MODES, RETRIEVAL_MODES, Clients


@function_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny and 21 C in {city}"


@pytest.fixture(autouse=True, scope="module")
def _no_tracing_upload():
    # the SDK uploads traces to OpenAI by default: a self-hosted deployment turns that off
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


async def agent_turn(clients: Clients, mode: str) -> RunResult:
    async with AsyncOpenAI(base_url=clients.url, api_key=clients.key, max_retries=0) as client:
        model_class = (
            OpenAIChatCompletionsModel if mode in RETRIEVAL_MODES else OpenAIResponsesModel
        )
        agent = Agent(
            name="weather",
            instructions="Answer weather questions with the get_weather tool.",
            tools=[get_weather],
            model=model_class(model=mode, openai_client=client),
            # forced on the first call; the SDK resets it to auto once the tool has run
            model_settings=ModelSettings(tool_choice="get_weather", temperature=0, max_tokens=48),
        )
        return await Runner.run(agent, "What is the weather in Paris?", max_turns=4)


def test_an_agent_turn_calls_the_tool_and_answers(clients: Clients) -> None:
    async def every_mode() -> list[RunResult | BaseException]:
        turns = (agent_turn(clients, mode) for mode in MODES)
        return await asyncio.gather(*turns, return_exceptions=True)

    for mode, result in zip(MODES, asyncio.run(every_mode()), strict=True):
        if isinstance(result, BaseException):
            raise AssertionError(f"in mode {mode!r}: {result}") from result
        calls = [item for item in result.new_items if item.type == "tool_call_item"]
        outputs = [item for item in result.new_items if item.type == "tool_call_output_item"]
        assert calls and outputs, mode
        assert outputs[0].output.startswith("sunny and 21 C in "), mode
        assert isinstance(result.final_output, str) and result.final_output, mode
