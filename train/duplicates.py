"""Repeated and contradicting examples: exact duplicates, the same prompt with different
answers, and near-duplicates.

- Exact duplicates (the same conversation, `Example.key`) are a warning: training keeps one
  of each, but the file is probably a concatenation or an export run twice.
- The same prompt (every message before the final answer, compared after `normalize`: case,
  spacing and punctuation do not count) with answers that disagree is an ERROR: the model is
  trained to say both, and which one it says is chance. Answers count as disagreeing when
  their words differ by more than a rewording (`REWORDED_RATIO`) or they state different
  numbers ("30 days" and "14 days" are one word apart, but not the same policy). Answers that
  are only reworded are a near-duplicate warning.
- Near-duplicates (a typo fixed, a word swapped, a copy edited) weigh one example several
  times and push the model towards reciting it. MinHash proposes candidate pairs
  (`train.minhash`, linear in the file), and difflib confirms them word by word. Two
  examples that name different products, codes or amounts (`train.facts`) are a template
  filled in twice, which teaches the template across products: not reported.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from itertools import combinations, pairwise

from train.examples import TOOLS_ROLE, Example
from train.facts import facts
from train.findings import Finding, quote
from train.minhash import candidate_pairs

__all__ = [
    "NEAR_DUPLICATE_PROMPT_RATIO",
    "NEAR_DUPLICATE_RATIO",
    "REWORDED_RATIO",
    "duplicate_findings",
    "last_user_text",
    "normalize",
    "prompt_key",
]

NEAR_DUPLICATE_RATIO = 0.9
"""Two examples whose normalised words agree this much (difflib's ratio: matching words over
the words of both) are near-duplicates: one changed word in a 20-word example is 0.95, a
product name swapped in two places of a 30-word answer about 0.87 (that is templated data,
not a copy, and is left alone)."""

NEAR_DUPLICATE_PROMPT_RATIO = 0.75
"""...and their questions (last user messages) agree this much on their own: "How do I" and
"How can I" make a copy (0.88 for a 7-word question); one macro answer pasted under
differently worded questions is not a copy of one example, and is left alone."""

REWORDED_RATIO = 0.8
"""Answers to the same prompt that agree less than this are conflicting, not reworded."""

_NON_WORD = re.compile(r"[\W_]+")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def normalize(text: str) -> str:
    """Lower case, words separated by single spaces, punctuation gone: what "the same text"
    means to the duplicate checks."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def prompt_key(example: Example) -> str:
    """The normalised conversation before the final answer (tools and system message too)."""
    parts = []
    for message in example.prompt_messages:
        if message["role"] == TOOLS_ROLE:
            parts.append("tools " + json.dumps(message["tools"], sort_keys=True))
            continue
        calls = json.dumps(message.get("tool_calls") or [], sort_keys=True)
        parts.append(f"{message['role']} {normalize(message.get('content') or '')} {calls}")
    return "\n".join(parts)


def last_user_text(example: Example) -> str:
    """The last user message: what a person would call "the question" of the example."""
    users = [m.get("content") or "" for m in example.messages if m["role"] == "user"]
    return users[-1] if users else ""


def duplicate_findings(examples: Sequence[Example]) -> list[Finding]:
    """Exact duplicates, conflicting or reworded answers to one prompt, near-duplicates."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.key()].append(example)
    unique = [group[0] for group in groups.values()]
    findings = [_exact_duplicate(group) for group in groups.values() if len(group) > 1]
    findings += _same_prompt(unique)
    findings += _near_duplicates(unique)
    return findings


def _exact_duplicate(group: list[Example]) -> Finding:
    return Finding.at(
        "warning",
        "exact_duplicate",
        f"the same example {len(group)} times ({quote(last_user_text(group[0]))}); "
        "training keeps one",
        (example.line for example in group),
    )


def _same_prompt(unique: list[Example]) -> list[Finding]:
    by_prompt: dict[str, list[Example]] = defaultdict(list)
    for example in unique:
        by_prompt[prompt_key(example)].append(example)
    findings = []
    for group in by_prompt.values():
        if len(group) < 2:
            continue
        answers: dict[str, list[Example]] = defaultdict(list)
        for example in group:
            answers[normalize(example.answer)].append(example)
        lines = [example.line for example in group]
        question = quote(last_user_text(group[0]))
        if len(answers) == 1:
            findings.append(
                Finding.at(
                    "warning",
                    "near_duplicate",
                    f"the same example {len(group)} times, differing only in case, spacing or "
                    f"punctuation ({question}); training keeps each",
                    lines,
                )
            )
        elif _disagree(list(answers)):
            shown = "; ".join(
                f"line {firsts[0].line}: {quote(firsts[0].answer, 60)}"
                for firsts in answers.values()
            )
            findings.append(
                Finding.at(
                    "error",
                    "conflicting_answers",
                    f"the same prompt {question} has {len(answers)} different answers: {shown}. "
                    "Keep the right one (or make the prompts say what differs)",
                    lines,
                    prompt=last_user_text(group[0]),
                    answers={str(e[0].line): e[0].answer for e in answers.values()},
                )
            )
        else:
            findings.append(
                Finding.at(
                    "warning",
                    "near_duplicate",
                    f"the same prompt {question} with {len(answers)} rewordings of one answer: "
                    "the prompt weighs more than the others",
                    lines,
                )
            )
    return findings


def _disagree(answers: list[str]) -> bool:
    """Whether some pair of (normalised) answers says different things."""
    for first, second in combinations(answers, 2):
        if set(_NUMBER.findall(first)) != set(_NUMBER.findall(second)):
            return True
        if _word_ratio(first.split(), second.split(), REWORDED_RATIO) < REWORDED_RATIO:
            return True
    return False


def _word_ratio(first: list[str], second: list[str], floor: float) -> float:
    """difflib's ratio of two word lists; when a cheap upper bound is already below `floor`,
    that bound (the pair is dismissed without the full comparison)."""
    matcher = SequenceMatcher(None, first, second, autojunk=False)
    for bound in (matcher.real_quick_ratio, matcher.quick_ratio):
        if (value := bound()) < floor:
            return value
    return matcher.ratio()


def _text(example: Example) -> str:
    return " ".join(m.get("content") or "" for m in example.prompt_messages if "content" in m)


def _words(example: Example) -> tuple[list[str], list[str]]:
    """The normalised words of the question (the last user message: a system message that
    every example shares says nothing about whether two are copies) and of the whole."""
    whole = [*normalize(_text(example)).split(), "|", *normalize(example.answer).split()]
    return normalize(last_user_text(example)).split(), whole


def _shingles(words: list[str]) -> Iterable[str]:
    """Words and word pairs: pairs keep the order, single words keep short texts alike."""
    return [*words, *(f"{a} {b}" for a, b in pairwise(words))]


def _near_duplicates(unique: list[Example]) -> list[Finding]:
    parts = [_words(example) for example in unique]
    questions, words = [part[0] for part in parts], [part[1] for part in parts]
    keys = [prompt_key(example) for example in unique]
    specifics = [facts(f"{_text(example)}\n{example.answer}", names=False) for example in unique]
    parent = list(range(len(unique)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    confirmed: list[tuple[int, float]] = []
    for first, second in sorted(candidate_pairs([_shingles(w) for w in words])):
        if keys[first] == keys[second] or specifics[first] != specifics[second]:
            continue  # the same prompt (`_same_prompt`), or a template filled in twice
        ratio = _word_ratio(words[first], words[second], NEAR_DUPLICATE_RATIO)
        if ratio >= NEAR_DUPLICATE_RATIO and (
            _word_ratio(questions[first], questions[second], NEAR_DUPLICATE_PROMPT_RATIO)
            >= NEAR_DUPLICATE_PROMPT_RATIO
        ):
            a, b = root(first), root(second)
            parent[max(a, b)] = min(a, b)
            confirmed.append((first, ratio))
    clusters: dict[int, list[Example]] = defaultdict(list)
    for index, example in enumerate(unique):
        clusters[root(index)].append(example)
    lowest: dict[int, float] = {}
    for index, ratio in confirmed:
        lowest[root(index)] = min(ratio, lowest.get(root(index), 1.0))
    findings = []
    for leader, members in sorted(clusters.items()):
        if len(members) < 2:
            continue
        percent = int(100 * lowest[leader])
        findings.append(
            Finding.at(
                "warning",
                "near_duplicate",
                f"{len(members)} nearly identical examples (at least {percent}% the same words): "
                f"{quote(last_user_text(members[0]))}; keep one, or make them differ",
                (example.line for example in members),
                similarity=round(lowest[leader], 3),
            )
        )
    return findings
