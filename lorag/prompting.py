"""Putting retrieved chunks into the prompt: numbered sources and an instruction to cite them,
within a token budget measured with the served model's own tokenizer and chat template.

Templates are versioned here; a mode names one (`template`) and may replace its instructions.
The budget drops the weakest chunks first and never cuts a chunk in the middle. Pure code
(no I/O): the gateway's RAG step and `lorag train build-raft` build the same prompts with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lorag.errors import InvalidRequest

__all__ = [
    "TEMPLATES",
    "Assembled",
    "Template",
    "Tokenizer",
    "cited_numbers",
    "template",
    "with_context",
]


@dataclass(frozen=True)
class Template:
    """How sources enter the conversation: the last user message becomes
    `sources + instructions + question` (the bundled 135M model answered 5/5 invented facts
    this way, 3/5 with the same sources in a system message)."""

    version: str
    instructions: str
    source_line: str  # format with index, title, text
    user_message: str  # format with sources, instructions, question

    def render(self, sources: str, question: str, instructions: str | None = None) -> str:
        return self.user_message.format(
            sources=sources, instructions=instructions or self.instructions, question=question
        )


TEMPLATES = {
    "v1": Template(
        version="v1",
        instructions="Answer the question using the sources below. Cite sources like [1].",
        source_line="[{index}] {title}: {text}",
        user_message="Sources:\n{sources}\n\n{instructions}\n\nQuestion: {question}",
    ),
}

_CITATION = re.compile(r"\[(\d{1,3})\]")


def template(version: str) -> Template:
    try:
        return TEMPLATES[version]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise InvalidRequest(f"unknown prompt template {version!r} (known: {known})") from None


def cited_numbers(text: str) -> set[int]:
    return {int(number) for number in _CITATION.findall(text)}


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


@dataclass
class Assembled:
    messages: list[dict[str, Any]]
    kept: list[Any]  # the hits placed in the prompt, numbered 1..n in this order
    dropped: int
    prompt_tokens: int


def _line(chosen: Template, index: int, hit: Any) -> str:
    text = " ".join(str(hit.text).split())
    return chosen.source_line.format(index=index, title=hit.title or hit.doc_id, text=text)


def with_context(
    messages: Sequence[dict[str, Any]],
    hits: Sequence[Any],
    *,
    tokenizer: Tokenizer,
    template_version: str,
    instructions: str | None,
    budget_tokens: int,
) -> Assembled:
    """`messages` with the sources that fit in `budget_tokens` (the whole prompt, chat template
    included) placed in the last user message."""
    chosen = template(template_version)

    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    question = messages[last_user].get("content")

    def render(kept: Sequence[Any]) -> list[dict[str, Any]]:
        sources = "\n".join(_line(chosen, i, hit) for i, hit in enumerate(kept, start=1))
        rendered = list(messages)
        if isinstance(question, str):
            content: Any = chosen.render(sources or "(none)", question, instructions)
        else:  # content parts: the sources go in a text part before the others
            intro = chosen.render(sources or "(none)", "", instructions).rstrip()
            content = [{"type": "text", "text": intro}, *(question or [])]
        rendered[last_user] = {**messages[last_user], "content": content}
        return rendered

    def count(candidate: list[dict[str, Any]]) -> int:
        ids = tokenizer.apply_chat_template(candidate, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    # Each source's cost alone, then the prefix of the strongest that fits.
    empty_cost = count(render([]))
    kept: list[Any] = []
    used = empty_cost
    for hit in hits:
        line = _line(chosen, len(kept) + 1, hit)
        cost = len(tokenizer.encode("\n" + line, add_special_tokens=False))
        if used + cost > budget_tokens:
            break
        kept.append(hit)
        used += cost
    final = render(kept)
    total = count(final)
    while kept and total > budget_tokens:  # token merges at the seams: re-check exactly
        kept.pop()
        final = render(kept)
        total = count(final)
    return Assembled(final, kept, len(hits) - len(kept), total)
