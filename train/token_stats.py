"""What the served tokenizer makes of the data: lengths in tokens and how well it covers
the words.

Lengths are counted with the tokenizer the adapter will be trained and served with, since
that is what `--max-seq-len` cuts and what the batches pay for: the prompt (everything the
model reads before the final answer), the answer, and the whole conversation as the chat
template renders it for training (`train.encoding`), template markup included.

Coverage: a word the tokenizer has never seen arrives as many short pieces. Abbreviations,
product codes and domain terms ("HTN-DM-CKD" is 7 pieces for SmolLM2) are what fine-tuning
guides warn about: the model has to learn the term from its fragments, and the fewer the
examples that use it, the worse that goes. The report names the most fragmented terms, the
recurring ones first, and the tokens per word of the whole file (English prose
is about 1.3 for common tokenizers).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from train.examples import Example, Message
from train.findings import Finding

__all__ = [
    "COVERAGE_MIN_WORDS",
    "FRAGMENTED_TERMS_SHOWN",
    "FRAGMENT_MAX_CHARS_PER_TOKEN",
    "FRAGMENT_MIN_TOKENS",
    "POOR_COVERAGE_TOKENS_PER_WORD",
    "SKEW_RATIO",
    "Distribution",
    "Lengths",
    "Tokenizer",
    "coverage_findings",
    "encode_many",
    "length_findings",
    "measure_lengths",
]

FRAGMENT_MIN_TOKENS = 4
FRAGMENT_MAX_CHARS_PER_TOKEN = 2.0
"""A term of at least 4 pieces, averaging 2 characters or fewer a piece, is fragmented:
ordinary words average about 4 characters a token, and a long but ordinary word
("unsubscribing", 13 characters in 4 tokens) stays above 3."""

FRAGMENTED_TERMS_SHOWN = 10
POOR_COVERAGE_TOKENS_PER_WORD = 2.0
"""Above this the tokenizer covers the text poorly (another language or script than the base
model was trained on, or mostly codes): every answer costs more, and learns slower."""

COVERAGE_MIN_WORDS = 200  # fewer words say little about a tokenizer's coverage

SKEW_RATIO = 4.0
"""Lengths are skewed when the 90th percentile is more than 4 times the median: the few long
examples then dominate the loss (it is summed over tokens) and the padding of every batch."""

_BATCH = 1024
_TRIM = "\"'`.,;:!?()[]{}<>*"


class Tokenizer(Protocol):
    """What the inspection needs of a tokenizer; a transformers tokenizer is one. If it also
    has `apply_chat_template` and `decode`, whole lengths and term pieces use them, and if it
    is callable on a list of texts (`tokenizer(texts)["input_ids"]`), it encodes in batches."""

    def encode(self, text: str, *, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass(frozen=True)
class Distribution:
    min: int
    p50: int
    p90: int
    max: int

    @classmethod
    def of(cls, values: Sequence[int]) -> Distribution:
        """Nearest-rank percentiles (each one a real example's length)."""
        ordered = sorted(values) or [0]

        def rank(share: float) -> int:
            return ordered[max(0, math.ceil(len(ordered) * share) - 1)]

        return cls(ordered[0], rank(0.5), rank(0.9), ordered[-1])


@dataclass(frozen=True)
class Lengths:
    """Token counts of every example (in file order) and the words the tokens covered."""

    prompt: list[int]
    answer: list[int]
    whole: list[int]  # the rendered conversation, as training sees it
    words: int  # of the messages' prose (content)...
    content_tokens: int  # ...and its tokens
    unrenderable: dict[int, str]  # line -> why the chat template could not render it

    @property
    def tokens_per_word(self) -> float:
        return self.content_tokens / self.words if self.words else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "prompt": asdict(Distribution.of(self.prompt)),
            "answer": asdict(Distribution.of(self.answer)),
            "whole": asdict(Distribution.of(self.whole)),
            "tokens_per_word": round(self.tokens_per_word, 2),
        }


def encode_many(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """The token ids of each text. A transformers tokenizer gets them in batches, which its
    Rust side encodes in parallel (a third of the time of one `encode` call a text, on 2
    cores)."""
    if not callable(tokenizer):
        return [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    ids: list[list[int]] = []
    for start in range(0, len(texts), _BATCH):
        batch = list(texts[start : start + _BATCH])
        ids += tokenizer(batch, add_special_tokens=False)["input_ids"]
    return ids


def _totals(tokenizer: Tokenizer, groups: list[list[str]]) -> list[int]:
    """The number of tokens of each group of texts (all of them encoded in one go)."""
    counts = iter([len(ids) for ids in encode_many(tokenizer, [t for g in groups for t in g])])
    return [sum(next(counts) for _ in group) for group in groups]


def _code(message: Message) -> list[str]:
    """What the model reads of a message besides its prose: offered tools, tool calls."""
    if "tools" in message:
        return [json.dumps(message["tools"])]
    calls = message.get("tool_calls") or ()
    return [f"{c['function']['name']}({c['function']['arguments']})" for c in calls]


def measure_lengths(examples: Sequence[Example], tokenizer: Tokenizer) -> Lengths:
    """Prompt and answer tokens count prose and code (tools, calls); tokens per word only
    prose, the text a tokenizer is judged on."""
    rendered = [_render(tokenizer, example) for example in examples]
    prose = [[m.get("content") or "" for m in e.prompt_messages] for e in examples]
    answers = [[e.messages[-1].get("content") or ""] for e in examples]
    prose_tokens = _totals(tokenizer, prose)
    answer_tokens = _totals(tokenizer, answers)
    prompt_code = [[t for m in e.prompt_messages for t in _code(m)] for e in examples]
    answer_code = [_code(e.messages[-1]) for e in examples]
    prompt = [a + b for a, b in zip(prose_tokens, _totals(tokenizer, prompt_code), strict=True)]
    answer = [a + b for a, b in zip(answer_tokens, _totals(tokenizer, answer_code), strict=True)]
    templated = _totals(tokenizer, [[text] if text else [] for text, _ in rendered])
    whole = [
        count if text else p + a
        for (text, _), count, p, a in zip(rendered, templated, prompt, answer, strict=True)
    ]
    return Lengths(
        prompt=prompt,
        answer=answer,
        whole=whole,
        words=sum(len(text.split()) for group in prose + answers for text in group),
        content_tokens=sum(prose_tokens) + sum(answer_tokens),
        unrenderable={
            e.line: problem for e, (_, problem) in zip(examples, rendered, strict=True) if problem
        },
    )


def _render(tokenizer: Tokenizer, example: Example) -> tuple[str, str]:
    """The conversation as the chat template renders it for training, or why it cannot."""
    template = getattr(tokenizer, "apply_chat_template", None)
    if template is None:
        return "", ""
    try:
        text = template(list(example.messages), tools=list(example.tools) or None, tokenize=False)
    except Exception as exc:  # jinja's errors, and whatever a template raises itself
        return "", f"{type(exc).__name__}: {exc}"
    return str(text), ""


def length_findings(
    examples: Sequence[Example], lengths: Lengths, max_seq_len: int
) -> list[Finding]:
    findings = []
    too_long = [e.line for e, n in zip(examples, lengths.whole, strict=True) if n > max_seq_len]
    if too_long:
        findings.append(
            Finding.at(
                "warning",
                "too_long",
                f"{len(too_long)} example(s) longer than max_seq_len {max_seq_len} tokens "
                f"(longest {max(lengths.whole)}): training cuts them there, and what is cut "
                "is not learned (raise --max-seq-len or shorten them)",
                too_long,
                max_seq_len=max_seq_len,
            )
        )
    for part, values in (("prompt", lengths.prompt), ("answer", lengths.answer)):
        spread = Distribution.of(values)
        if spread.p50 and spread.p90 > SKEW_RATIO * spread.p50:
            limit = SKEW_RATIO * spread.p50
            long_ones = [e.line for e, n in zip(examples, values, strict=True) if n > limit]
            findings.append(
                Finding.at(
                    "warning",
                    "length_skew",
                    f"{part} lengths are skewed: median {spread.p50} tokens, 90th percentile "
                    f"{spread.p90}; the {len(long_ones)} longer than {limit:.0f} dominate the "
                    "loss and the padding",
                    long_ones,
                    part=part,
                )
            )
    for line, problem in sorted(lengths.unrenderable.items()):
        findings.append(
            Finding.at(
                "warning",
                "chat_template",
                f"the base model's chat template cannot render this example ({problem})",
                [line],
            )
        )
    return findings


def coverage_findings(
    examples: Sequence[Example], lengths: Lengths, tokenizer: Tokenizer
) -> list[Finding]:
    """The most fragmented terms (one finding each) and poor coverage overall."""
    findings = []
    if (
        lengths.words >= COVERAGE_MIN_WORDS
        and lengths.tokens_per_word > POOR_COVERAGE_TOKENS_PER_WORD
    ):
        findings.append(
            Finding.at(
                "warning",
                "poor_coverage",
                f"{lengths.tokens_per_word:.2f} tokens per word (English prose: about 1.3): the "
                "base model's tokenizer covers this text poorly, so it learns it slower",
                [],
            )
        )
    used_in: dict[str, set[int]] = defaultdict(set)
    for example in examples:
        for message in example.messages:
            for raw in (message.get("content") or "").split():
                term = raw.strip(_TRIM)
                if _is_term(term):
                    used_in[term].add(example.line)
    terms = list(used_in)
    pieces = dict(zip(terms, encode_many(tokenizer, [f" {t}" for t in terms]), strict=True))
    # a word opening a sentence ("Warranty") counts as the known word it is in lower case
    titled = [term for term in terms if term.istitle() and term.isalpha()]
    for term, ids in zip(
        titled, encode_many(tokenizer, [f" {t.lower()}" for t in titled]), strict=True
    ):
        pieces[term] = min(pieces[term], ids, key=len)
    fragmented = [
        (term, ids)
        for term, ids in pieces.items()
        if len(ids) >= FRAGMENT_MIN_TOKENS and len(term) / len(ids) <= FRAGMENT_MAX_CHARS_PER_TOKEN
    ]
    # recurring terms first (a one-off ID cannot be learned anyway), the most pieces first
    fragmented.sort(
        key=lambda item: (len(used_in[item[0]]) < 2, -len(item[1]), -len(used_in[item[0]]), item[0])
    )
    for term, ids in fragmented[:FRAGMENTED_TERMS_SHOWN]:
        lines = used_in[term]
        parts = _pieces(tokenizer, ids)
        shown = f" ({'|'.join(parts)})" if parts else ""
        findings.append(
            Finding.at(
                "warning",
                "fragmented_terms",
                f'"{term}" is {len(ids)} tokens{shown} in {len(lines)} example(s): learned from '
                "its pieces; keep one spelling, write abbreviations out once",
                lines,
                term=term,
                tokens=len(ids),
                pieces=parts,
            )
        )
    return findings


def _is_term(word: str) -> bool:
    """Worth a look: long enough to be fragmented, has a letter, not an address or a link."""
    return (
        len(word) >= FRAGMENT_MIN_TOKENS
        and any(char.isalpha() for char in word)
        and "@" not in word
        and "://" not in word
    )


def _pieces(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    decode = getattr(tokenizer, "decode", None)
    if decode is None:
        return []
    return [str(decode([token])).strip() or str(decode([token])) for token in ids]
