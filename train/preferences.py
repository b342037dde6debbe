"""Preference pairs: OpenAI's preference fine-tuning format, read, checked, scrubbed and split.

One JSON object a line (`lorag train --method dpo --data FILE`, `lorag data inspect FILE`):

    {"input": {"messages": [{"role": "user", "content": "Where is my order?"}]},
     "preferred_output": [{"role": "assistant", "content": "Could you send me the order
                           number? Then I can look it up. -- Support"}],
     "non_preferred_output": [{"role": "assistant", "content": "No idea."}]}

`input.messages` is the conversation so far, checked as a chat file's messages are (system,
user, assistant and tool turns; it ends with the user's or a tool's message), with optional
`tools` (`parallel_tool_calls` is accepted and ignored). Each output is a list of ONE
assistant message: text, or `tool_calls` of the input's tools. The two answers must differ.
Unknown keys are errors (a misspelt `prefered_output` would otherwise train on nothing); every
bad line is reported at once with its number and the field at fault (`input.messages[2]: ...`,
`non_preferred_output[0]: ...`).

`prepare_preferences` is `train.dataset.prepare_data` for pairs: scrub personal data from the
prompt and both answers, drop exact duplicates, and split with the same seeded, prompt-grouped
split (every pair of one prompt lands in one split; test is cut first).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag.jsonl import BadLine, bad_lines_message, read_jsonl
from train.data_formats import parse_chat_record
from train.dataset import file_sha256, split_examples
from train.errors import InvalidData
from train.examples import DataSummary, Example, Message
from train.scrub import scrub_example

__all__ = [
    "FORMAT",
    "PreferencePair",
    "PreparedPreferences",
    "load_preferences",
    "looks_like_preferences",
    "parse_preference",
    "prepare_preferences",
    "read_pairs",
    "write_pairs",
]

FORMAT = "preference"
_OUTPUTS = ("preferred_output", "non_preferred_output")
_KEYS = ("input", *_OUTPUTS)
_INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
_ANSWER_KEYS = frozenset({"role", "content", "tool_calls"})
_MESSAGE_INDEX = re.compile(r"messages\[(\d+)\]")


@dataclass(frozen=True)
class PreferencePair:
    """One prompt and two answers to it, the first preferred."""

    prompt: tuple[Message, ...]  # the conversation before the answer
    preferred: Message
    non_preferred: Message
    line: int = 0  # 1-based line in the user's file
    tools: tuple[dict[str, Any], ...] = ()

    def scored(self, answer: Message) -> Example:
        """The conversation with `answer` as the only trained turn: earlier assistant turns of
        the prompt get weight 0, so a pair's score is its final answer's alone."""
        prompt = tuple(
            {**message, "weight": 0} if message["role"] == "assistant" else message
            for message in self.prompt
        )
        return Example((*prompt, answer), line=self.line, tools=self.tools)

    @property
    def preferred_example(self) -> Example:
        """The prompt with the preferred answer (what data inspection reads)."""
        return Example((*self.prompt, self.preferred), line=self.line, tools=self.tools)

    @property
    def preferred_text(self) -> str:
        return Example((self.preferred,)).answer

    @property
    def non_preferred_text(self) -> str:
        return Example((self.non_preferred,)).answer

    def key(self) -> str:
        """Identity for exact-duplicate detection."""
        parts = [list(self.tools), list(self.prompt), self.preferred, self.non_preferred]
        return json.dumps(parts, sort_keys=True, ensure_ascii=False)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "prompt": list(self.prompt),
            "preferred": self.preferred,
            "non_preferred": self.non_preferred,
            "line": self.line,
        }
        if self.tools:
            data["tools"] = list(self.tools)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreferencePair:
        return cls(
            tuple(dict(message) for message in data["prompt"]),
            dict(data["preferred"]),
            dict(data["non_preferred"]),
            line=int(data.get("line", 0)),
            tools=tuple(data.get("tools") or ()),
        )


# --- parsing ------------------------------------------------------------------------------


def _located(reason: str, prompt_length: int, side: str) -> str:
    """A chat-check reason about the combined conversation, renamed to the record's fields:
    messages[i] is input.messages[i] or the output (`side[0]`); tools are the input's."""

    def name(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"input.messages[{index}]" if index < prompt_length else f"{side}[0]"

    reason = _MESSAGE_INDEX.sub(name, reason)
    reason = re.sub(r"^'?tools", lambda m: m.group(0).replace("tools", "input.tools"), reason)
    if reason == "no user message":
        return "input.messages: no user message"
    return reason


def _answer(side: str, value: object, given: dict[str, Any]) -> tuple[Any, ...]:
    """(prompt messages, the answer, tools) of one output, checked with the input."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise BadLine(f"'{side}' must be a list of one assistant message")
    message = value[0]
    if message.get("role") != "assistant":
        raise BadLine(f"{side}[0].role must be 'assistant', got {message.get('role')!r}")
    unknown = sorted(set(message) - _ANSWER_KEYS)
    if unknown:
        raise BadLine(f"{side}[0]: unknown key(s) {', '.join(map(repr, unknown))}")
    messages = given["messages"]
    try:
        parsed, tools = parse_chat_record(
            {"messages": [*messages, message], "tools": given.get("tools")}
        )
    except BadLine as exc:
        raise BadLine(_located(str(exc), len(messages), side)) from None
    return parsed[:-1], parsed[-1], tools


def parse_preference(number: int, record: Any) -> PreferencePair:
    """One line of a preference file (`number` is its 1-based line); raises `BadLine`."""
    if not isinstance(record, dict):
        raise BadLine("must be a JSON object")
    unknown = sorted(set(record) - set(_KEYS))
    if unknown:
        raise BadLine(f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(_KEYS)}")
    for key in _KEYS:
        if key not in record:
            raise BadLine(f"missing field '{key}'")
    given = record["input"]
    if not isinstance(given, dict):
        raise BadLine("'input' must be an object with 'messages' (and optional 'tools')")
    unknown = sorted(set(given) - _INPUT_KEYS)
    if unknown:
        raise BadLine(f"input: unknown key(s) {', '.join(map(repr, unknown))}")
    messages = given.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadLine("input.messages must be a non-empty list")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") in ("system", "assistant"):  # (others: below)
        raise BadLine(
            f"input.messages[{len(messages) - 1}]: the input must end with the user's (or a "
            "tool's) message, which the outputs answer"
        )
    prompt, preferred, tools = _answer("preferred_output", record["preferred_output"], given)
    _, non_preferred, _ = _answer("non_preferred_output", record["non_preferred_output"], given)
    if preferred == non_preferred:
        raise BadLine("preferred_output and non_preferred_output are the same answer")
    return PreferencePair(tuple(prompt), preferred, non_preferred, line=number, tools=tools)


def looks_like_preferences(path: Path) -> bool:
    """Whether the first JSON object of `path` is a preference record (not a chat one)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    return any(key in record for key in _OUTPUTS)
    except OSError:
        return False
    return False


def load_preferences(path: Path) -> list[PreferencePair]:
    """Every pair of `path`; `InvalidData` listing every bad line, nothing trained."""
    if not path.is_file():
        raise InvalidData(f"preference file not found: {path}", param=str(path))
    try:
        read = read_jsonl(path, parse_preference)
    except UnicodeDecodeError as exc:
        raise InvalidData(f"{path.name}: not valid UTF-8 ({exc})", param=str(path)) from None
    if read.problems:
        raise InvalidData(
            f"{bad_lines_message(path, read.problems)}\n(OpenAI's preference format: input, "
            "preferred_output, non_preferred_output; nothing was trained)",
            param=str(path),
            problems=read.problems,
        )
    if not read.items:
        raise InvalidData(f"{path.name}: no preference pairs", param=str(path))
    return read.items


# --- preparing a run's data ----------------------------------------------------------------


@dataclass
class PreparedPreferences:
    train: list[PreferencePair]
    validation: list[PreferencePair]
    test: list[PreferencePair]
    summary: DataSummary


def _scrubbed(pair: PreferencePair, counts: Counter[str]) -> PreferencePair:
    """The pair with personal data replaced in the prompt and both answers."""
    with_preferred = scrub_example(pair.preferred_example, counts)
    non_preferred = scrub_example(Example((pair.non_preferred,)), counts).messages[0]
    return dataclasses.replace(
        pair,
        prompt=with_preferred.messages[:-1],
        preferred=with_preferred.messages[-1],
        non_preferred=non_preferred,
    )


def prepare_preferences(
    path: Path,
    *,
    scrub: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> PreparedPreferences:
    """Validate, scrub, deduplicate and split a preference file (see the module docstring)."""
    pairs = load_preferences(path)
    counts: Counter[str] = Counter()
    if scrub:
        pairs = [_scrubbed(pair, counts) for pair in pairs]
    unique: dict[str, PreferencePair] = {}
    for pair in pairs:
        unique.setdefault(pair.key(), pair)
    by_line = {pair.line: pair for pair in unique.values()}
    split = split_examples(
        [pair.preferred_example for pair in unique.values()], val_fraction, seed, test_fraction
    )

    def back(examples: list[Example]) -> list[PreferencePair]:
        return [by_line[example.line] for example in examples]

    train, validation, test = back(split.train), back(split.validation), back(split.test)
    summary = DataSummary(
        file=path.name,
        sha256=file_sha256(path),
        format=FORMAT,
        records=len(pairs),
        duplicates_dropped=len(pairs) - len(unique),
        scrub=scrub,
        scrubbed=dict(sorted(counts.items())),
        train=len(train),
        validation=len(validation),
        test=len(test),
    )
    return PreparedPreferences(train, validation, test, summary)


def write_pairs(path: Path, pairs: list[PreferencePair]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")


def read_pairs(path: Path) -> list[PreferencePair]:
    with path.open(encoding="utf-8") as handle:
        return [PreferencePair.from_json(json.loads(line)) for line in handle if line.strip()]
