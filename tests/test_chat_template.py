"""The bundled model's template: the original's text for plain chats, tools in Hermes' shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lorag.chat_template import BUNDLED_CHAT_TEMPLATE

# the template SmolLM2-135M-Instruct's GGUF carries (what was served before lorag's)
ORIGINAL = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def render(template: str, messages: list[dict[str, object]], **kwargs: object) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env.from_string(template).render(messages=messages, **kwargs)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a\nb"}],
        [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
        ],
    ],
)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_plain_chats_render_as_the_original(
    messages: list[dict[str, object]], add_generation_prompt: bool
) -> None:
    ours = render(BUNDLED_CHAT_TEMPLATE, messages, add_generation_prompt=add_generation_prompt)
    assert ours == render(ORIGINAL, messages, add_generation_prompt=add_generation_prompt)


def test_tools_calls_and_results_are_rendered() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
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
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    text = render(BUNDLED_CHAT_TEMPLATE, messages, tools=[WEATHER], add_generation_prompt=True)
    system, rest = text.split("<|im_end|>\n", 1)
    assert system.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<tools>\n" + json.dumps(WEATHER) + "\n</tools>" in system
    assert "<|im_start|>user\nWeather in Paris?<|im_end|>\n" in rest
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert f"<|im_start|>assistant\n{call}<|im_end|>\n" in rest
    assert "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n" in rest
    assert text.endswith("<|im_start|>assistant\n")


def test_the_bundled_model_folder_carries_it(base_model_dir: Path) -> None:
    assert (base_model_dir / "chat_template.jinja").read_text() == BUNDLED_CHAT_TEMPLATE
