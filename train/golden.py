"""A user's golden set: prompts whose answers must pass checks, whatever the base model did.

The control set asks "did the adapter keep what the base could do?"; a golden set states what
any published adapter MUST do, so its checks are enforced on the adapter even where the base
fails them too (the base's result is reported beside it, for reading, never for judging).
One JSON object a line (`lorag train --golden FILE`, `lorag adapters gate NAME@vN --golden FILE`):

    {"prompt": "Reply with only a JSON object with keys name and priority: ...",
     "json_schema": {"type": "object", "required": ["name", "priority"]}}
    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
     "keywords": ["refund"], "regex": "30 days?", "forbidden": ["as an AI"], "max_new_tokens": 96}

A line has `prompt` (one user message) or `messages` (system/user/assistant turns ending with
the user's), at least one check, and optionally `max_new_tokens` (1-1024, default 128). Checks:

    keywords     each must appear in the answer (case-insensitive)
    regex        a pattern, or a list of them, that `re.search` must find in the answer
    json_schema  the answer is one JSON document valid under this JSON Schema (validated with
                 `jsonschema`, in the schema's own draft). The document may stand alone or
                 alone inside one Markdown code fence (```json ... ```), as chat models write
                 it and clients strip it; prose around it fails, since a program that asked
                 for JSON cannot parse prose.
    forbidden    none of these may appear (case-insensitive, as keywords)

Unknown keys are errors (a misspelt check would silently check nothing); every bad line is
reported at once, naming the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from jsonschema import validators
from jsonschema.exceptions import SchemaError

from lorag.jsonl import BadLine, bad_lines_message, read_jsonl
from train.errors import InvalidData
from train.examples import Message

__all__ = [
    "CHECKS",
    "DEFAULT_MAX_NEW_TOKENS",
    "CheckResult",
    "GoldenItem",
    "GoldenSet",
    "json_answer",
    "load_golden",
    "load_golden_set",
    "parse_golden_item",
]

CHECKS = ("keywords", "regex", "json_schema", "forbidden")
DEFAULT_MAX_NEW_TOKENS = 128
_MAX_NEW_TOKENS_LIMIT = 1024
_KEYS = frozenset({"prompt", "messages", "max_new_tokens", *CHECKS})
_CHAT_ROLES = ("system", "user", "assistant")
_FENCED = re.compile(r"```[\w+-]*[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)
_WHY_CHARS = 160


class CheckResult(TypedDict):
    """One check on one answer: `why` says what failed ("" when it passed)."""

    check: str
    passed: bool
    why: str


@dataclass(frozen=True)
class GoldenItem:
    line: int  # 1-based line in the golden file: failures name it
    messages: tuple[Message, ...]
    keywords: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    forbidden: tuple[str, ...] = ()
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    @property
    def prompt(self) -> str:
        """The last user message (what the report shows)."""
        return str(self.messages[-1]["content"])

    @property
    def checks(self) -> list[str]:
        """The checks this line has, in `CHECKS` order."""
        present = {
            "keywords": bool(self.keywords),
            "regex": bool(self.regex),
            "json_schema": self.json_schema is not None,
            "forbidden": bool(self.forbidden),
        }
        return [name for name in CHECKS if present[name]]

    def check(self, answer: str) -> list[CheckResult]:
        """Every check of this line on `answer`, in `CHECKS` order."""
        lowered = answer.lower()
        results: list[CheckResult] = []
        if self.keywords:
            missing = [k for k in self.keywords if k.lower() not in lowered]
            results.append(_result("keywords", "missing " + ", ".join(map(repr, missing)), missing))
        if self.regex:
            unmatched = [p for p in self.regex if not re.search(p, answer)]  # (re caches them)
            results.append(_result("regex", "no match for " + ", ".join(unmatched), unmatched))
        if self.json_schema is not None:
            why = _schema_problem(answer, self.json_schema)
            results.append({"check": "json_schema", "passed": not why, "why": why})
        if self.forbidden:
            found = [f for f in self.forbidden if f.lower() in lowered]
            results.append(_result("forbidden", "contains " + ", ".join(map(repr, found)), found))
        return results


def _result(check: str, why: str, culprits: list[str]) -> CheckResult:
    return {"check": check, "passed": not culprits, "why": why[:_WHY_CHARS] if culprits else ""}


def json_answer(answer: str) -> Any:
    """The JSON document an answer holds: the whole answer, or the whole of one code fence
    (see the module docstring). Raises ValueError saying why it is not one."""
    text = answer.strip()
    fenced = _FENCED.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise ValueError("empty answer")
    return json.loads(text)  # json.JSONDecodeError is a ValueError


def _schema_problem(answer: str, schema: dict[str, Any]) -> str:
    """ "" when the answer is a JSON document valid under `schema`, else why not."""
    try:
        document = json_answer(answer)
    except ValueError as exc:
        return f"not JSON ({exc})"[:_WHY_CHARS]
    validator = validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if not errors:
        return ""
    where = "/".join(map(str, errors[0].path)) or "the document"
    return f"schema: {where}: {errors[0].message}"[:_WHY_CHARS]


def _strings(record: dict[str, Any], key: str, *, one_allowed: bool = False) -> tuple[str, ...]:
    value = record.get(key)
    if value is None:
        return ()
    if one_allowed and isinstance(value, str):
        value = [value]
    what = "a string or a list of strings" if one_allowed else "a list of strings"
    if not isinstance(value, list) or not value:
        raise BadLine(f"'{key}' must be {what} (not empty)")
    if not all(isinstance(item, str) and item for item in value):
        raise BadLine(f"'{key}' must be {what}, each not empty")
    return tuple(value)


def _messages(record: dict[str, Any]) -> tuple[Message, ...]:
    if ("prompt" in record) == ("messages" in record):
        raise BadLine("give either 'prompt' or 'messages'")
    if "prompt" in record:
        prompt = record["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadLine("'prompt' must be a non-empty string")
        return ({"role": "user", "content": prompt},)
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise BadLine("'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise BadLine(f"messages[{i}] must be an object with 'role' and 'content' only")
        if message["role"] not in _CHAT_ROLES:
            raise BadLine(f"messages[{i}].role must be one of {', '.join(_CHAT_ROLES)}")
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise BadLine(f"messages[{i}].content must be a non-empty string")
    if messages[-1]["role"] != "user":
        raise BadLine("'messages' must end with a user message (the model answers it)")
    return tuple(dict(message) for message in messages)


def _schema(record: dict[str, Any]) -> dict[str, Any] | None:
    schema = record.get("json_schema")
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise BadLine("'json_schema' must be a JSON Schema object")
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise BadLine(f"'json_schema' is not a valid JSON Schema: {exc.message}") from None
    return schema


def parse_golden_item(number: int, record: Any) -> GoldenItem:
    """One line of a golden file (`number` is its 1-based line); raises `BadLine`."""
    if not isinstance(record, dict):
        raise BadLine("must be a JSON object")
    unknown = sorted(set(record) - _KEYS)
    if unknown:
        raise BadLine(f"unknown key(s) {', '.join(map(repr, unknown))}; known: {sorted(_KEYS)}")
    messages = _messages(record)
    regex = _strings(record, "regex", one_allowed=True)
    for pattern in regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadLine(f"'regex' {pattern!r} does not compile: {exc}") from None
    max_new_tokens = record.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if (
        not isinstance(max_new_tokens, int)
        or isinstance(max_new_tokens, bool)
        or not 1 <= max_new_tokens <= _MAX_NEW_TOKENS_LIMIT
    ):
        raise BadLine(f"'max_new_tokens' must be an integer from 1 to {_MAX_NEW_TOKENS_LIMIT}")
    item = GoldenItem(
        line=number,
        messages=messages,
        keywords=_strings(record, "keywords"),
        regex=regex,
        json_schema=_schema(record),
        forbidden=_strings(record, "forbidden"),
        max_new_tokens=max_new_tokens,
    )
    if not item.checks:
        raise BadLine(f"no check: give at least one of {', '.join(CHECKS)}")
    return item


def load_golden(path: Path) -> list[GoldenItem]:
    """Read a golden file; every bad line is reported at once (`InvalidData`, param the file)."""
    if not path.is_file():
        raise InvalidData(f"golden file not found: {path}", param=str(path))
    read = read_jsonl(path, parse_golden_item)
    if read.problems:
        raise InvalidData(
            bad_lines_message(path, read.problems), param=str(path), problems=read.problems
        )
    if not read.items:
        raise InvalidData(f"{path.name}: no golden prompts", param=str(path))
    return read.items


@dataclass(frozen=True)
class GoldenSet:
    """A golden file as a gate ran it: its name, its text and its items. The text travels with
    the verdict into the registry (`GateReport.record`), so a version continued with `--from`
    is held to its parent's golden checks even where the file itself is gone."""

    file: str
    text: str
    items: tuple[GoldenItem, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_golden_set(path: Path) -> GoldenSet:
    """`load_golden`, with the file's name and text kept."""
    items = load_golden(path)
    return GoldenSet(path.name, path.read_text(encoding="utf-8"), tuple(items))
