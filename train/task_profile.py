"""What kind of task the data teaches, and whether there is enough of it.

Fine-tuning guides agree on orders of magnitude: a style or format (tone, structure, a fixed
template, JSON) is learned from hundreds of examples; knowledge (facts, names, numbers) needs
thousands and is still recalled unreliably, which is why facts belong in the knowledge base
(`lorag ingest`, answered with citations by the rag and hybrid modes) and training should
teach behaviour. To start, they advise 500-1,000 clean examples.

The kind is read off the answers:

- knowledge: most answers state specific facts (numbers, dates, prices, product codes,
  names in mid-sentence) and the facts vary from answer to answer;
- format: most answers share a template (the same opening or closing words, or JSON with
  the same keys); the few that do not are listed, as they teach the model to drop it;
- style: neither.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from train.examples import Example
from train.facts import facts
from train.findings import Finding

__all__ = [
    "DISTINCT_FACTS_PER_ANSWER",
    "FACTS_PER_ANSWER",
    "FACTUAL_SHARE",
    "MIN_EXAMPLES",
    "START_EXAMPLES",
    "TEMPLATE_SHARE",
    "TaskKind",
    "TaskProfile",
    "profile_task",
    "task_findings",
]

TaskKind = Literal["style", "format", "knowledge"]

MIN_EXAMPLES: dict[TaskKind, int] = {"style": 500, "format": 500, "knowledge": 2000}
"""Below these counts of clean examples: a warning. The guides: "hundreds" for style and
format, "thousands" for knowledge, and 500-1,000 clean examples to start with."""
START_EXAMPLES = "500-1,000"

TEMPLATE_SHARE = 0.7
"""Answers share a template when at least 70% of them open or close with the same words (or
are JSON with the same keys); fewer than that is a habit, not a format."""
TEMPLATE_MIN_CHARS = 5  # "Sure," or "The" opening many answers is not a template
TEMPLATE_MAX_WORDS = 8

FACTS_PER_ANSWER = 2  # an answer stating at least two specific facts is factual
FACTUAL_SHARE = 0.5  # knowledge-like when at least half of the answers are factual...
DISTINCT_FACTS_PER_ANSWER = 0.5  # ...and they do not all repeat the same few facts


@dataclass(frozen=True)
class TaskProfile:
    kind: TaskKind
    reason: str
    template: str | None  # 'opens with "[ACME]"', 'JSON with keys ...'
    template_share: float
    off_template: list[int] = field(default_factory=list)  # lines of answers without it
    factual: list[int] = field(default_factory=list)  # lines of the factual answers
    factual_share: float = 0.0
    clean_examples: int = 0
    recommended: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def profile_task(examples: Sequence[Example], clean_examples: int) -> TaskProfile:
    """Kind, template and factual share of the answers; `clean_examples` = unique examples
    without conflicts (what the count advice is about)."""
    answers = [example.answer for example in examples]
    template, share, matches = _template(answers)
    new_facts = [_new_facts(example) for example in examples]
    factual = [
        e.line
        for e, found in zip(examples, new_facts, strict=True)
        if len(found) >= FACTS_PER_ANSWER
    ]
    factual_share = len(factual) / len(examples) if examples else 0.0
    distinct = len(frozenset().union(*new_facts)) / len(examples) if examples else 0.0
    kind: TaskKind
    if factual_share >= FACTUAL_SHARE and distinct >= DISTINCT_FACTS_PER_ANSWER:
        kind = "knowledge"
        reason = f"{factual_share:.0%} of the answers state facts their prompt did not give"
    elif template is not None:
        kind, reason = "format", f"{share:.0%} of the answers {template}"
    else:
        kind, reason = "style", "answers share no template and state few specific facts"
    off = [e.line for e, ok in zip(examples, matches, strict=True) if not ok] if template else []
    return TaskProfile(
        kind=kind,
        reason=reason,
        template=template,
        template_share=round(share, 3),
        off_template=off,
        factual=factual,
        factual_share=round(factual_share, 3),
        clean_examples=clean_examples,
        recommended=MIN_EXAMPLES[kind],
    )


def task_findings(profile: TaskProfile) -> list[Finding]:
    findings = []
    if profile.clean_examples < profile.recommended:
        need = "thousands" if profile.kind == "knowledge" else "hundreds"
        findings.append(
            Finding.at(
                "warning",
                "too_few_examples",
                f"{profile.clean_examples} clean example(s) (unique, without conflicts): a "
                f"{profile.kind} task needs {need} ({profile.recommended:,} or more here); the "
                f"guides advise {START_EXAMPLES} clean examples to start",
                [],
                clean_examples=profile.clean_examples,
                recommended=profile.recommended,
            )
        )
    if profile.template is not None and profile.off_template:
        findings.append(
            Finding.at(
                "warning",
                "mixed_templates",
                f"{profile.template_share:.0%} of the answers {profile.template}, these "
                f"{len(profile.off_template)} do not: they teach the model to drop the format",
                profile.off_template,
                template=profile.template,
            )
        )
    if profile.kind == "knowledge":
        findings.append(
            Finding.at(
                "warning",
                "looks_like_facts",
                f"{profile.factual_share:.0%} of the answers state specific facts: facts "
                "belong in the knowledge base (`lorag ingest`, answered with citations by the "
                "rag and hybrid modes); training teaches behaviour (tone, format, what to "
                "ask), and a fine-tuned model recalls facts unreliably",
                profile.factual,
            )
        )
    return findings


def _new_facts(example: Example) -> frozenset[str]:
    """The answer's facts that its prompt did not already hold (naming the product the user
    asked about is not knowledge)."""
    prompt = " ".join(m.get("content") or "" for m in example.prompt_messages).casefold()
    return frozenset(fact for fact in facts(example.answer) if fact not in prompt)


def _template(answers: list[str]) -> tuple[str | None, float, list[bool]]:
    """The template most answers share (a description), its share, and which answers
    follow it: JSON with the same keys, else the same opening and/or closing words."""
    structures = [_json_keys(answer) for answer in answers]
    counted = Counter(s for s in structures if s is not None)
    if counted:
        keys, count = counted.most_common(1)[0]
        if count >= TEMPLATE_SHARE * len(answers):
            described = f"are JSON with the keys {keys}" if keys else "are JSON arrays"
            return described, count / len(answers), [s == keys for s in structures]
    words = [answer.split() for answer in answers]
    opening = _common_edge(words, from_end=False)
    closing = _common_edge(words, from_end=True)
    parts, follows = [], [True] * len(answers)
    for edge, verb, from_end in ((opening, "open", False), (closing, "close", True)):
        if edge is not None:
            parts.append(f'{verb} with "{edge}"')
            size = len(edge.split())
            for index, answer_words in enumerate(words):
                cut = answer_words[-size:] if from_end else answer_words[:size]
                follows[index] = follows[index] and " ".join(cut) == edge
    if not parts:
        return None, 0.0, follows
    return " and ".join(parts), sum(follows) / len(answers), follows


def _json_keys(answer: str) -> str | None:
    """`"a, b"` (sorted top-level keys) for a JSON object answer, `""` for an array."""
    text = answer.strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict):
        return ", ".join(sorted(value))
    return "" if isinstance(value, list) else None


def _common_edge(words: list[list[str]], *, from_end: bool) -> str | None:
    """The longest opening (or closing) run of words that most answers share."""
    best = None
    for size in range(1, TEMPLATE_MAX_WORDS + 1):
        edges = Counter(
            " ".join(w[-size:] if from_end else w[:size]) for w in words if len(w) >= size
        )
        if not edges:
            break
        edge, count = edges.most_common(1)[0]
        if count < TEMPLATE_SHARE * len(words):
            break
        if len(edge) >= TEMPLATE_MIN_CHARS:
            best = edge
    return best
