"""Which vLLM tool-call parser reads the base model's tool calls.

`LORAG_VLLM_TOOL_PARSER=auto` (the default) decides from the model folder: its chat template
first (the format a model writes its calls in is the one its template shows it), then its
`model_type`. An unknown model gets no automatic tool choice: `tool_choice` `required` and a
named function still work (vLLM forces them with structured output), `auto` is refused with a
message saying how to set a parser. `none` turns automatic tool choice off.

| template / model_type | parser | families |
|---|---|---|
| `[TOOL_CALLS]` | `mistral` | Mistral, Mixtral, Ministral |
| `<|python_tag|>` / `ipython` | `llama3_json` | Llama 3.1, 3.2, 3.3 |
| `<tool_call>` | `hermes` | Qwen 2.5 and 3, Hermes, the bundled SmolLM2 (lorag's template) |
| `llama4` | `llama4_pythonic` | Llama 4 |
| `gemma3`, `gemma3_text` | `pythonic` | Gemma 3 (no native format: calls as Python) |
| `qwen2`, `qwen3` | `hermes` | Qwen without a template in the folder |
| `mistral` | `mistral` | |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolParserChoice", "choose_tool_parser", "parser_for"]

_BY_TEMPLATE = (
    ("[TOOL_CALLS]", "mistral"),
    ("<|python_tag|>", "llama3_json"),
    ("ipython", "llama3_json"),
    ("<tool_call>", "hermes"),
)
_BY_MODEL_TYPE = {
    "llama4": "llama4_pythonic",
    "gemma3": "pythonic",
    "gemma3_text": "pythonic",
    "qwen2": "hermes",
    "qwen3": "hermes",
    "mistral": "mistral",
}


@dataclass(frozen=True)
class ToolParserChoice:
    parser: str | None
    """vLLM's `--tool-call-parser` name; None: no automatic tool choice."""
    reason: str

    def describe(self) -> dict[str, str | None]:
        return {"parser": self.parser, "reason": self.reason}


def parser_for(template: str, model_type: str) -> ToolParserChoice:
    """The parser for a model whose chat template is `template` (may be empty)."""
    for marker, parser in _BY_TEMPLATE:
        if marker in template:
            return ToolParserChoice(parser, f"its chat template writes calls with {marker}")
    if model_type in _BY_MODEL_TYPE:
        return ToolParserChoice(_BY_MODEL_TYPE[model_type], f"model type {model_type}")
    known = model_type or "unknown"
    return ToolParserChoice(None, f"no known tool-call format (model type {known})")


def choose_tool_parser(requested: str, model: str) -> ToolParserChoice:
    """`requested` (the setting: `auto`, `none` or a parser name) for the model at `model`."""
    if requested == "none":
        return ToolParserChoice(None, "turned off (LORAG_VLLM_TOOL_PARSER=none)")
    if requested != "auto":
        return ToolParserChoice(requested, "asked for")
    folder = Path(model)
    return parser_for(_template(folder), _model_type(folder))


def _template(folder: Path) -> str:
    for candidate in ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"):
        try:
            text = (folder / candidate).read_text(encoding="utf-8")
        except OSError:
            continue
        if candidate == "chat_template.jinja":
            return text
        try:
            value = json.loads(text).get("chat_template")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # named templates: [{"name":..., "template":...}]
            return "\n".join(str(item.get("template", "")) for item in value)
    return ""


def _model_type(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    value = config.get("model_type") if isinstance(config, dict) else None
    return value if isinstance(value, str) else ""
