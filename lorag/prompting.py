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
    "DEFAULT_TEMPLATE",
    "TEMPLATES",
    "Assembled",
    "Template",
    "Tokenizer",
    "cited_numbers",
    "label",
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
    source_line: str  # format with index, title, label (title > section), text
    user_message: str  # format with sources, about, instructions, question
    about: str = ""  # format with entities: the documents the question names, if any
    keep_lines: bool = False  # the chunk's own line breaks (lists, tables) stay
    strict_instructions: str = (
        "Answer the question in one short sentence, in your own words, using the sources "
        "below. Cite the source like [1]. Do not list or repeat the sources."
    )  # a retry of a degenerate answer (`lorag.degenerate`)
    revise: str = (
        "A first draft of the answer, which may be wrong: {draft}\n"
        "Check the draft against the sources: keep what they support, correct what they "
        "contradict, and give the corrected answer."
    )  # two-stage generation: the draft, to revise against the sources

    def render(
        self,
        sources: str,
        question: str,
        instructions: str | None = None,
        entities: Sequence[str] = (),
    ) -> str:
        about = self.about.format(entities=" and ".join(entities)) if entities else ""
        return self.user_message.format(
            sources=sources,
            about=about,
            instructions=instructions or self.instructions,
            question=question,
        )


TEMPLATES = {
    "v1": Template(
        version="v1",
        instructions="Answer the question using the sources below. Cite sources like [1].",
        source_line="[{index}] {title}: {text}",
        user_message="Sources:\n{sources}\n\n{instructions}\n\nQuestion: {question}",
    ),
    # Each source labelled with its document and section and its lines kept, and the
    # documents the question names stated above the sources: look-alike documents' sources
    # can be told apart (examples/lookalike; docs/benchmarks.md, "Look-alike documents").
    "v2": Template(
        version="v2",
        instructions="Answer the question using the sources below. Cite sources like [1].",
        source_line="[{index}] {label}\n{text}",
        user_message="{about}Sources:\n{sources}\n\n{instructions}\n\nQuestion: {question}",
        about="These sources are about {entities}.\n\n",
        keep_lines=True,
    ),
}

DEFAULT_TEMPLATE = "v2"
"""A mode's template unless it names one (measured: docs/benchmarks.md, look-alike documents)."""

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


def label(hit: Any) -> str:
    """`Title > Section` of a hit (its section path starts with its title when it has one)."""
    title = hit.title or hit.doc_id
    section = getattr(hit, "section", None)
    if not section:
        return str(title)
    return str(section) if str(section).startswith(str(title)) else f"{title} > {section}"


def _line(chosen: Template, index: int, hit: Any) -> str:
    if chosen.keep_lines:
        lines = (" ".join(line.split()) for line in str(hit.text).splitlines())
        text = "\n".join(line for line in lines if line)
    else:
        text = " ".join(str(hit.text).split())
    return chosen.source_line.format(
        index=index, title=hit.title or hit.doc_id, label=label(hit), text=text
    )


def with_context(
    messages: Sequence[dict[str, Any]],
    hits: Sequence[Any],
    *,
    tokenizer: Tokenizer,
    template_version: str,
    instructions: str | None,
    budget_tokens: int,
    entities: Sequence[str] = (),
    best_last: bool = False,
    strict: bool = False,
    draft: str | None = None,
) -> Assembled:
    """`messages` with the sources that fit in `budget_tokens` (the whole prompt, chat template
    included) placed in the last user message: `hits` best first; the weakest are left out
    when the budget is short; listed best first, or best last (next to the question) with
    `best_last`, numbered in the order listed. `entities`: the documents the question names
    (stated where the template says); `strict`: the template's strict instructions (a retry
    of a degenerate answer); `draft`: a first answer (two-stage generation), placed after the
    instructions for the model to revise against the sources (its citations removed: they
    numbered other sources)."""
    chosen = template(template_version)
    if strict:
        instructions = chosen.strict_instructions
    if draft is not None and draft.strip():
        cleaned = " ".join(re.sub(r"\s*" + _CITATION.pattern, "", draft).split())
        revision = chosen.revise.format(draft=cleaned)
        instructions = f"{instructions or chosen.instructions}\n\n{revision}"

    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    question = messages[last_user].get("content")

    def listed(kept: Sequence[Any]) -> list[Any]:
        return list(reversed(kept)) if best_last else list(kept)

    def render(kept: Sequence[Any]) -> list[dict[str, Any]]:
        lines = (_line(chosen, i, hit) for i, hit in enumerate(listed(kept), start=1))
        sources = "\n".join(lines)
        rendered = list(messages)
        if isinstance(question, str):
            content: Any = chosen.render(sources or "(none)", question, instructions, entities)
        else:  # content parts: the sources go in a text part before the others
            intro = chosen.render(sources or "(none)", "", instructions, entities).rstrip()
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
    return Assembled(final, listed(kept), len(hits) - len(kept), total)
