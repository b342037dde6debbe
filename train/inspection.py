"""Know before you train: what `lorag data inspect FILE` checks, and `lorag train` first.

`inspect_file(path, tokenizer)` reads the file as training would (`load_examples`: a bad
record is an error with its line) and `inspect_examples` looks at what it holds:

    duplicates      exact and near-duplicates; the same prompt with conflicting answers
                    (an error: the model would learn both)            train.duplicates
    lengths         prompt / answer / whole-conversation tokens under the served
                    tokenizer; longer than max_seq_len; skewed        train.token_stats
    coverage        tokens per word; the most fragmented terms        train.token_stats
    task            style, format or knowledge; enough examples for it; one template;
                    facts that belong in the knowledge base           train.task_profile
    personal data   what the scrubber will replace                    train.scrub

Errors stop `lorag train`; warnings are printed and training goes on. The tokenizer is the
served base model's (the CLI loads it); anything with `encode` will do for tests.

A preference file (OpenAI's preference format, `train.preferences`) is inspected through its
preferred conversations, plus the checks of `train.preference_checks` (`inspect_preferences`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train.config import TrainConfig
from train.data_formats import load_examples
from train.duplicates import duplicate_findings
from train.errors import InvalidData
from train.examples import Example
from train.findings import SEVERITIES, Finding
from train.preference_checks import preference_findings
from train.preferences import FORMAT, PreferencePair, load_preferences, looks_like_preferences
from train.scrub import scrub_text
from train.task_profile import TaskProfile, profile_task, task_findings
from train.token_stats import (
    Tokenizer,
    coverage_findings,
    length_findings,
    measure_lengths,
)

__all__ = [
    "CODES",
    "DEFAULT_MAX_SEQ_LEN",
    "InspectionReport",
    "inspect_examples",
    "inspect_file",
    "inspect_preferences",
]

DEFAULT_MAX_SEQ_LEN: int = TrainConfig.max_seq_len  # what `lorag train` cuts at by default

CODES = (
    "invalid_record",
    "conflicting_answers",
    "reversed_pair",
    "too_few_examples",
    "looks_like_facts",
    "mixed_templates",
    "exact_duplicate",
    "near_duplicate",
    "too_long",
    "length_skew",
    "length_bias",
    "chat_template",
    "poor_coverage",
    "fragmented_terms",
    "pii",
)
"""Every finding code, in the order the report lists them (the most consequential first)."""

_PII_NAMES = {
    "email": "email address(es)",
    "phone": "phone number(s)",
    "card": "card number(s)",
    "iban": "IBAN(s)",
}
_PROBLEM_LINE = re.compile(r"^line (\d+):")


@dataclass
class InspectionReport:
    file: str
    format: str
    examples: int
    max_seq_len: int
    findings: list[Finding] = field(default_factory=list)
    lengths: dict[str, Any] | None = None  # Lengths.summary(); None when the file is unreadable
    task: TaskProfile | None = None
    tokenizer: str = ""  # whose tokenizer counted the tokens (the served base model)

    def of(self, severity: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    @property
    def warnings(self) -> list[Finding]:
        return self.of("warning")

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "examples": self.examples,
            "max_seq_len": self.max_seq_len,
            "tokenizer": self.tokenizer,
            "counts": {severity: len(self.of(severity)) for severity in SEVERITIES},
            "lengths": self.lengths,
            "task": self.task.to_json() if self.task else None,
            "findings": [finding.to_json() for finding in self.findings],
        }


def inspect_file(
    path: Path,
    tokenizer: Callable[[], Tokenizer],
    *,
    data_format: str = "auto",
    prompt_column: str | None = None,
    completion_column: str | None = None,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
) -> InspectionReport:
    """The report on `path`. Bad records are its errors (one per line); a file that cannot be
    read at all (missing, empty, unknown format) raises `InvalidData` as training would.
    `tokenizer()` is called once the file has parsed, so a bad file is reported at once."""
    if data_format == "auto" and looks_like_preferences(path):
        try:
            pairs = load_preferences(path)
        except InvalidData as exc:
            if not exc.problems:
                raise
            findings = [_bad_record(problem) for problem in exc.problems]
            return InspectionReport(path.name, FORMAT, 0, max_seq_len, findings)
        report = inspect_preferences(pairs, tokenizer(), max_seq_len=max_seq_len)
        report.file = path.name
        return report
    try:
        examples, fmt = load_examples(
            path, data_format, prompt_column=prompt_column, completion_column=completion_column
        )
    except InvalidData as exc:
        if not exc.problems:
            raise
        findings = [_bad_record(problem) for problem in exc.problems]
        return InspectionReport(path.name, data_format, 0, max_seq_len, findings)
    report = inspect_examples(examples, tokenizer(), max_seq_len=max_seq_len)
    report.file, report.format = path.name, fmt
    return report


def inspect_examples(
    examples: Sequence[Example], tokenizer: Tokenizer, *, max_seq_len: int = DEFAULT_MAX_SEQ_LEN
) -> InspectionReport:
    """Every check on parsed examples (each with its `line`), findings sorted by severity."""
    findings = duplicate_findings(examples)
    lengths = measure_lengths(examples, tokenizer)
    findings += length_findings(examples, lengths, max_seq_len)
    findings += coverage_findings(examples, lengths, tokenizer)
    findings += _pii_findings(examples)
    profile = profile_task(examples, _clean_count(examples, findings))
    findings += task_findings(profile)
    findings.sort(key=_order)
    return InspectionReport(
        "", "", len(examples), max_seq_len, findings, lengths.summary(), profile
    )


def inspect_preferences(
    pairs: Sequence[PreferencePair],
    tokenizer: Tokenizer,
    *,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
) -> InspectionReport:
    """A preference file's report: the usual checks on the preferred conversations (without
    conflicting answers: one prompt may have several pairs), and the preference checks."""
    report = inspect_examples(
        [pair.preferred_example for pair in pairs], tokenizer, max_seq_len=max_seq_len
    )
    kept = [f for f in report.findings if f.code != "conflicting_answers"]
    report.findings = sorted(kept + preference_findings(pairs), key=_order)
    report.format = FORMAT
    return report


def _order(finding: Finding) -> tuple[int, int]:
    """Errors first; within a severity, the codes in `CODES` order, each code's findings in
    the order its check gave them (by line, or the most fragmented term first)."""
    code = CODES.index(finding.code) if finding.code in CODES else len(CODES)
    return SEVERITIES.index(finding.severity), code


def _clean_count(examples: Sequence[Example], findings: list[Finding]) -> int:
    """Examples left once each duplicate group counts once and conflicting ones not at all."""
    kept = {example.line for example in examples}
    for finding in findings:
        if finding.code in ("exact_duplicate", "near_duplicate"):
            kept -= set(finding.lines[1:])
        elif finding.code == "conflicting_answers":
            kept -= set(finding.lines)
    return len(kept)


def _pii_findings(examples: Sequence[Example]) -> list[Finding]:
    """One finding per kind the scrubber replaces (`train.scrub`), with the lines."""
    lines: dict[str, set[int]] = defaultdict(set)
    totals: Counter[str] = Counter()
    for example in examples:
        found: Counter[str] = Counter()
        for message in example.messages:
            scrub_text(message.get("content") or "", found)
            for call in message.get("tool_calls") or ():
                scrub_text(call["function"]["arguments"], found)
        for kind in found:
            lines[kind].add(example.line)
        totals += found
    return [
        Finding.at(
            "warning",
            "pii",
            f"{totals[kind]} {_PII_NAMES.get(kind, kind)} in {len(lines[kind])} example(s): "
            f"training replaces them with <{kind.upper()}> (unless --no-scrub)",
            lines[kind],
            kind=kind,
            count=totals[kind],
        )
        for kind in sorted(lines)
    ]


def _bad_record(problem: str) -> Finding:
    match = _PROBLEM_LINE.match(problem)
    lines = [int(match.group(1))] if match else []
    message = problem[match.end() :].strip() if match else problem
    return Finding.at("error", "invalid_record", message, lines)
