"""The Ollama `Modelfile` written beside an exported GGUF (`ollama create NAME -f Modelfile`).

Ollama does not run the model's Jinja chat template: a Modelfile carries its own in Go's
template syntax. Translating Jinja in general is not possible, so the model's template is
recognised by what it renders instead of by its text: when a probe conversation renders as
ChatML (`<|im_start|>role\\n...<|im_end|>\\n`, SmolLM2's format and Qwen's), the Modelfile
gets the ChatML template below, and the system prompt the template adds when a conversation
has none becomes the Modelfile's `SYSTEM` (Ollama puts it first when a request sends no system
message, which is what the Jinja template does). Any other format gets no `TEMPLATE`: Ollama
then falls back on its own reading of the chat template stored in the GGUF, and the caller is
told so. Tool definitions are not rendered by this template (the Jinja one lists them in the
system turn); tool use through Ollama needs a hand-written template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from train.errors import InvalidOption

__all__ = ["CHATML_TEMPLATE", "Modelfile", "build_modelfile"]

_START, _END = "<|im_start|>", "<|im_end|>"

CHATML_TEMPLATE = (
    "{{- range .Messages }}" + _START + "{{ .Role }}\n{{ .Content }}" + _END + "\n{{ end }}"
    f"{_START}assistant\n"
)
"""ChatML in Go's template syntax: every message, then the open assistant turn."""

_PROBE_SYSTEM = "S"
_PROBE = [
    {"role": "system", "content": _PROBE_SYSTEM},
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"},
]


@dataclass(frozen=True)
class Modelfile:
    text: str
    warning: str | None  # why Ollama may not format conversations as the model expects


def _chatml(messages: list[dict[str, str]]) -> str:
    turns = "".join(f"{_START}{m['role']}\n{m['content']}{_END}\n" for m in messages)
    return f"{turns}{_START}assistant\n"


def _quoted(text: str) -> str:
    """A Modelfile value in triple quotes (which the value itself must not contain)."""
    if '"""' in text:
        raise InvalidOption('a Modelfile value cannot contain """', param="gguf")
    return f'"""{text}"""'


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str | None:
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # a template may refuse a probe (e.g. one demanding alternating roles)
        return None
    return text if isinstance(text, str) else None


def _default_system(tokenizer: Any) -> str | None:
    """The system prompt the template adds to a conversation without one (None if it adds
    none); raises LookupError when the template does not render ChatML."""
    if _render(tokenizer, _PROBE) != _chatml(_PROBE):
        raise LookupError("not ChatML")
    user_only = [{"role": "user", "content": "U1"}]
    rendered = _render(tokenizer, user_only) or ""
    if rendered == _chatml(user_only):
        return None
    prefix = f"{_START}system\n"
    tail = f"{_END}\n" + _chatml(user_only)
    if rendered.startswith(prefix) and rendered.endswith(tail):
        return rendered[len(prefix) : -len(tail)]
    raise LookupError("adds something other than a system turn")


def build_modelfile(tokenizer: Any, gguf_name: str) -> Modelfile:
    """The Modelfile for the GGUF file `gguf_name` (in the same folder)."""
    lines = [f"FROM ./{gguf_name}", ""]
    if not tokenizer.chat_template:
        return Modelfile(
            "\n".join(lines) + "\n",
            "the base model has no chat template: the Modelfile has no TEMPLATE either",
        )
    try:
        system = _default_system(tokenizer)
    except LookupError:
        return Modelfile(
            "\n".join(lines) + "\n",
            "the chat template is not ChatML: the Modelfile has no TEMPLATE, so Ollama uses "
            "its own reading of the template stored in the GGUF; check a conversation's "
            "format before relying on it",
        )
    lines += [f"TEMPLATE {_quoted(CHATML_TEMPLATE)}", ""]
    if system:
        lines += [f"SYSTEM {_quoted(system)}", ""]
    lines += [f'PARAMETER stop "{_START}"', f'PARAMETER stop "{_END}"']
    return Modelfile("\n".join(lines) + "\n", None)
