"""The bundled model's chat template: ChatML, with tools in the Hermes style.

SmolLM2's own template (the one its GGUF carries) renders only string contents and knows
nothing of tools: a request with `tools`, an assistant turn that made tool calls (no
content), or a `tool` message either break it or never reach the model. This template renders
exactly what the original did for plain conversations (so every answer measured before, and
the base answers lorag ships, stay valid) and adds, in the format the Hermes/Qwen 2.5 family
uses and vLLM's `hermes` tool parser reads back:

- `tools`: listed in the system turn inside `<tools></tools>`, one JSON signature a line,
  with the instruction to answer with `<tool_call>{"name": ..., "arguments": ...}</tool_call>`;
- an assistant turn's `tool_calls`: each as a `<tool_call>` block after its content;
- a `tool` message: a user turn holding `<tool_response>...</tool_response>`.

`prepare_bundled_model` writes it into the bundled model's folder, so vLLM (serving) and
transformers (training) render conversations with the same text.
"""

from __future__ import annotations

__all__ = ["BUNDLED_CHAT_TEMPLATE", "DEFAULT_SYSTEM_PROMPT"]

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

BUNDLED_CHAT_TEMPLATE = (
    "{%- set default_system = '" + DEFAULT_SYSTEM_PROMPT + "' -%}\n"
    r"""{%- macro text(content) -%}
{%- if content is none -%}
{%- elif content is string -%}{{ content }}
{%- else -%}{%- for part in content -%}
{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- macro tools_block() -%}
{{- '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' -}}
{{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
{%- for tool in tools -%}{{- '\n' -}}{{- tool | tojson -}}{%- endfor -%}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and ' -}}
{{- 'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n' -}}
{{- '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' -}}
{%- endmacro -%}
{%- for message in messages -%}
{%- if loop.first and message['role'] != 'system' -%}
{{- '<|im_start|>system\n' + default_system -}}
{%- if tools -%}{{- tools_block() -}}{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endif -%}
{%- if message['role'] == 'system' -%}
{{- '<|im_start|>system\n' + text(message['content']) -}}
{%- if loop.first and tools -%}{{- tools_block() -}}{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- elif message['role'] == 'tool' -%}
{{- '<|im_start|>user\n<tool_response>\n' + text(message['content']) -}}
{{- '\n</tool_response><|im_end|>\n' -}}
{%- elif message['role'] == 'assistant' and message.get('tool_calls') -%}
{{- '<|im_start|>assistant\n' + text(message['content']) -}}
{%- for call in message['tool_calls'] -%}
{%- set function = call['function'] if call.get('function') else call -%}
{%- if not loop.first or text(message['content']) -%}{{- '\n' -}}{%- endif -%}
{{- '<tool_call>\n{"name": ' + (function['name'] | tojson) + ', "arguments": ' -}}
{%- if function['arguments'] is string -%}{{- function['arguments'] -}}
{%- else -%}{{- function['arguments'] | tojson -}}{%- endif -%}
{{- '}\n</tool_call>' -}}
{%- endfor -%}
{{- '<|im_end|>\n' -}}
{%- else -%}
{{- '<|im_start|>' + message['role'] + '\n' + text(message['content']) + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""
)
